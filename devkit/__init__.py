"""What the tests, the benchmarks and the service scripts share (never imported by a service).

``processes``: run a service as a real process (or an app in a thread) on a free port and
wait until it is ready; ``stub_upstream``: an OpenAI-compatible fake vision/reasoner
server with scriptable failures; ``screens``: synthetic screenshots with known text.
Tests keep their own fixtures in ``tests/support``; bench/ and services/*/scripts import
this package instead of the test tree.
"""
