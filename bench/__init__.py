"""The benchmark behind BEHAVIOUR §11's performance bars: `scripts/bench`.

A real chain (pre-encoded 1080p30 clips published by `ffmpeg -c copy` → `relay run`
→ nginx-rtmp standing in for the platform → viewers that timestamp every video
frame on arrival) measures the failover gaps a viewer sees, the latency Relay adds,
its CPU and memory against plain ffmpeg, and a soak; `bench.report` writes the
figures to docs/BENCHMARKS.md.

    clips.py    encode the test clips once (cached) and index their frames by content
    nginx.py    the stand-in platform (nginx-rtmp, live, no recording)
    viewer.py   a viewer process: one line per video frame, arrival time + content hash
    chain.py    the processes of one chain: relay, publishers, ffmpeg baseline
    figures.py  pure arithmetic on what was recorded (freeze, percentiles, latency)
    report.py   the Markdown page
    run.py      the phases, in order, and the command line
"""
