"""FlashSight's wire protocol: OpenAI chat schemas, the error body and SSE framing."""
