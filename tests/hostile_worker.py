"""A worker process for the hostile-input tests: it loads descriptions under resource limits.

Run as ``python hostile_worker.py MEMORY_BYTES SECONDS``; it reads one JSON-encoded description
text per line on stdin and answers one JSON line per case on stdout: ``{"outcome": "ok" |
"DescriptionError" | <foreign exception type>, "message", "seconds", "peak"}``. Each case does
what ``tnngen check`` does (load, validate, range analysis, summary) and runs the golden model
on one input. The address space is capped (``RLIMIT_AS``) and each case is stopped after
``SECONDS`` of processor time by an alarm, so that a case over its bounds shows as such instead
of taking the machine; ``seconds`` is processor time too, so that the bound is the case's work
and not the load of a shared machine. ``peak`` is the largest memory the case allocated beyond
its own text, measured in a second run under tracemalloc (which NumPy reports to).
"""

import json
import resource
import signal
import sys
import time
import tracemalloc


class _TimeUp(Exception):
    pass


def _alarm(signum, frame):
    raise _TimeUp


def _case(text, seconds, network, golden, summarize):
    """``(outcome, message, processor seconds)`` of one case."""
    start = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        net = network.loads(text, source="case.json")
        summarize(net)
        golden.run(net, golden.random_inputs(net, 1, seed=0))
        outcome, message = "ok", ""
    except network.DescriptionError as exc:
        outcome, message = "DescriptionError", str(exc)[:300]
    except _TimeUp:
        outcome, message = "time-out", f"over {seconds} s"
    except BaseException as exc:  # any other type is what the tests look for
        outcome, message = type(exc).__name__, str(exc)[:300]
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    return outcome, message, time.process_time() - start


def main():
    memory, seconds = int(sys.argv[1]), float(sys.argv[2])
    from gen import network
    from gen.network import golden
    from gen.network.summary import summarize

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    signal.signal(signal.SIGPROF, _alarm)
    for line in sys.stdin:
        text = json.loads(line)
        del line
        # timed without tracemalloc (which slows every allocation several-fold), then run
        # again under it for the peak
        outcome, message, elapsed = _case(text, seconds, network, golden, summarize)
        peak = 0
        if outcome in ("ok", "DescriptionError"):
            tracemalloc.start()
            baseline, _ = tracemalloc.get_traced_memory()
            _case(text, 10 * seconds, network, golden, summarize)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peak -= baseline
        del text
        answer = {"outcome": outcome, "message": message, "seconds": elapsed, "peak": peak}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
