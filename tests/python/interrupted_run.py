"""Starts a `ktq convert` and kills it with SIGKILL once its journal says a
given layer is written: the shared start of the kill-and-resume tests of
the calibrating engines (test_gptq_engine.py, test_awq_engine.py)."""
import json
import signal
import subprocess
import time


def kill_after_layer(args, out, layer, timeout):
    """Runs args (a `ktq convert ... out` command line); returns False when
    the run finished before it could be killed, True once it was killed
    with layer `layer` (and those before) written."""
    p = subprocess.Popen(args)
    journal = out / ".ktq-journal.json"
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        try:
            if layer in json.loads(journal.read_text()).get("layers_done", []):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    return not ((out / "model.safetensors").exists() and not journal.exists())
