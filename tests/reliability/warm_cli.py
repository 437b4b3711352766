"""A warm launcher for ``python -m papersys`` children: one process imports the slow modules once (torch,
sentence-transformers: 10-20 s on a 2-core host), then forks one child per run. Each child sets its own
environment, working directory and output files and runs ``papersys``'s ``__main__`` exactly as
``python -m papersys`` would, so everything it does after the interpreter's start is the real thing: it
imports papersys, reads its config, loads the model's weights itself, and can be killed at any instant.

Only modules that start no threads of their own may be preloaded (so not polars, nor papersys which imports
it): a fork copies the calling thread only. Torch and sentence-transformers start none until they compute.

The launcher runs as a script (stdlib only before the preload). Requests are JSON lines on its stdin,
answers JSON lines on its stdout: ``{"pid": n}`` as soon as the child is forked, then
``{"pid": n, "returncode": rc}`` when it has ended (``-signal`` when killed, like ``subprocess``). The
child is reaped only when the next request comes, so its pid stays its own (a zombie) until then, and a
``kill`` by the test can never reach another process."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import queue
import runpy
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

READY = "ready"


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m papersys ARGS`` with the request's env, cwd and output files."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, fd)
            os.close(out)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # as ``python -m`` run from that directory
        sys.argv = ["papersys", *request["args"]]
        runpy.run_module("papersys", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:  # how click ends every run
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # what the interpreter does at exit: logging shutdown and the like
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _returncode(info: os.waitid_result) -> int:
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def serve(preload: Sequence[str], requests: TextIO, answers: TextIO) -> None:
    for name in preload:
        importlib.import_module(name)

    def answer(message: dict[str, Any]) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    answer({READY: sorted(preload)})
    zombie = 0
    for line in requests:
        if zombie:
            os.waitpid(zombie, 0)
            zombie = 0
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(json.loads(line))
        answer({"pid": pid})
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: the pid stays its own
        answer({"pid": pid, "returncode": _returncode(info)})
        zombie = pid
    if zombie:
        os.waitpid(zombie, 0)


@dataclass
class Child:
    """One forked ``papersys`` run; ``returncode`` is None while it runs."""

    pid: int
    launcher: WarmCLI
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(queue.Empty):
                self.returncode = self.launcher.answer(block=False)["returncode"]
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = int(self.launcher.answer()["returncode"])
        return self.returncode

    def kill(self, sig: int) -> None:
        """Send ``sig`` unless the child has ended (then it is a zombie: the signal reaches nobody)."""
        if self.poll() is None:
            os.kill(self.pid, sig)


class WarmCLI:
    """The launcher process and its answers. One child at a time; ``close()`` ends the launcher."""

    def __init__(self, cwd: Path, preload: Sequence[str], env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *preload], cwd=cwd, env=dict(env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.current: Child | None = None
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.answer()  # no timeout here: the preload takes what the host makes it take
        assert ready == {READY: sorted(preload)}, ready

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))
        self._answers.put({"eof": True})

    def answer(self, *, block: bool = True) -> dict[str, Any]:
        message = self._answers.get(block=block)
        if "eof" in message:
            self._answers.put(message)
            raise RuntimeError(f"the launcher ended (exit status {self.proc.wait()})")
        return message

    def start(
        self, *args: str | Path, env: Mapping[str, str], stdout: Path | None = None, stderr: Path | None = None
    ) -> Child:
        request = {
            "args": list(map(str, args)),
            "env": dict(env),
            "cwd": str(self.cwd),
            "stdout": str(stdout) if stdout else None,
            "stderr": str(stderr) if stderr else None,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        self.current = Child(int(self.answer()["pid"]), self)
        return self.current

    def close(self) -> None:
        """End the launcher (and a child still running: a failed test must not leave one behind)."""
        if self.current is not None and self.current.poll() is None:
            self.current.kill(signal.SIGKILL)
            self.current.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


if __name__ == "__main__":
    serve(sys.argv[1:], sys.stdin, sys.stdout)
