# -*- test-case-name: tests.test_outlive -*-
"""What the daemon asks a session holder to hold (``--sessions-outlive-daemon``).

Each request to the holder factory (:mod:`vibetwist.vt._hold`) carries a spec
(JSON) naming the control directory, the session (its session.json fields, as
the daemon made them) and what to exec; the program's environment travels
beside it. Sans-IO: encoding and decoding only.
"""

from __future__ import annotations

import json

from vibetwist.errors import FormatError
from vibetwist.model.info import LaunchPlan, SessionInfo


def encode_spec(control_dir: str, info: SessionInfo, plan: LaunchPlan) -> str:
    """What a holder is told to hold (the plan's environment travels beside it)."""
    return json.dumps(
        {
            "controlDir": control_dir,
            "info": info.to_json(),
            "executable": plan.executable,
            "argv": list(plan.argv),
            "cwd": plan.cwd,
        },
        ensure_ascii=False,
    )


def decode_spec(value: str, env: dict[str, str]) -> tuple[str, SessionInfo, LaunchPlan]:
    """The control directory, session and plan (with env as its environment) a spec names;
    FormatError if it names none."""
    try:
        spec = json.loads(value)
        info = SessionInfo.from_json(spec["info"])
        argv = spec["argv"]
        control_dir, executable, cwd = spec["controlDir"], spec["executable"], spec["cwd"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise FormatError(f"not a holder's spec: {e}") from e
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise FormatError("not a holder's spec: argv must be a non-empty list of strings")
    if not all(isinstance(v, str) and v for v in (control_dir, executable, cwd)):
        raise FormatError("not a holder's spec: controlDir, executable and cwd must be strings")
    return control_dir, info, LaunchPlan(executable, tuple(argv), env, cwd)
