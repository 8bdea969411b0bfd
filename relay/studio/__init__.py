"""A local studio on this PC, for the demo, the tests and the benchmark.

Everything here runs Relay and its neighbours from the outside, as a studio would:
child processes, the platform stand-in, the broker, synthetic encoders, and Relay's
JSON log read as it grows. Nothing in the media plane imports it.

- :mod:`relay.studio.procs`: tools, free ports, child processes and the stop signals.
- :mod:`relay.studio.platform`: nginx-rtmp as the platform (one configuration for all).
- :mod:`relay.studio.broker`: Mosquitto, and whether a broker answers.
- :mod:`relay.studio.encoders`: synthetic encoders and listeners (ffmpeg, or PyAV).
- :mod:`relay.studio.logfollow`: Relay's JSON log, followed incrementally.
- :mod:`relay.studio.relayrun`: `relay run` as a child process, its log followed.
- :mod:`relay.studio.configs`: a relay.toml for a studio on 127.0.0.1.
- :mod:`relay.studio.local`: the demo's whole studio (platform, broker, Relay, encoders).
"""
