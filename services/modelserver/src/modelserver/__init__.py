"""The model-serving runtime FlashSight's vision and reasoner services share.

A service is its settings, its backends and a few lines::

    class Settings(ModelServerSettings):            # modelserver.config
        model_config = SettingsConfigDict(env_prefix="VISION_", extra="ignore")
        port: int = 8081
        backend: str = "ocr-lite"

    BACKENDS = {"ocr-lite": OcrLiteBackend, "glm": GlmBackend}   # name → factory(settings)

    def create_app(settings: Settings) -> FastAPI:
        return create_model_app(settings, backends=BACKENDS, title="FlashSight vision")

    run(create_app(Settings()), settings)           # modelserver.serve, in __main__.py

Modules: ``backend`` (the Backend Protocol), ``engine`` (batching, streaming, stop strings,
cancellation), ``app`` (factory + lifespan), ``routes`` / ``protocol`` / ``streaming``
(OpenAI wire), ``tools`` (tool calling: call syntaxes, their grammars, prompt, parsing),
``errors`` (exception tree + handler table), ``images`` (data: URL images),
``deps``, ``metrics``, ``middleware`` (access line + metrics), ``serve``. The request-id
contract, body limit, framework error handlers and log line shape are flashsight_common's.
"""
