"""Coding agents' pre-tool-use hook protocols: read the shell command from the payload, answer the verdict.

Pure: payload text in, (command, folder) out; a guard decision in, (stdout text, exit code) out. Each
protocol follows its vendor's documentation:

- Claude Code, `PreToolUse` with the matcher `Bash` — https://code.claude.com/docs/en/hooks
  (docs.anthropic.com/en/docs/claude-code/hooks). Payload: `{"session_id", "transcript_path", "cwd",
  "permission_mode", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command",
  "description", "timeout", "run_in_background"}, "tool_use_id"}`. Answer on stdout with exit 0:
  `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny"|"ask",
  "permissionDecisionReason": …}}` — the reason of a deny is shown to Claude, that of an ask to the
  user; no output lets the normal permission flow go on (guard never approves, it only objects).
- Gemini CLI, `BeforeTool` with the matcher `run_shell_command` —
  https://geminicli.com/docs/hooks/reference (google-gemini/gemini-cli docs/hooks/reference.md,
  docs/hooks/index.md, docs/tools/shell.md). Payload: `{"session_id", "transcript_path", "cwd",
  "hook_event_name": "BeforeTool", "timestamp", "tool_name": "run_shell_command", "tool_input":
  {"command", "description", "directory"}}`, `directory` relative to the project root. Answer: stdout
  holds only JSON, exit 0: `{"decision": "deny", "reason": …}` (the reason is sent to the agent),
  `{"decision": "ask", …}`, or `{}` to go on.

A payload that cannot be read is allowed with a warning on stderr: a broken hook must not stop the
agent, and guard never prints a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migwatch.display import COMMAND_LIMIT, visible
from migwatch.guard import AGENT_LINE, Decision, Verdict

MAX_PAYLOAD_BYTES = 1_000_000


class PayloadError(ValueError):
    """The hook payload is not what the agent's protocol documents; the message says what is wrong."""


@dataclass(frozen=True)
class ShellCall:
    """The shell command an agent is about to run, and the folder it runs in (None: not a shell tool)."""

    command: str | None
    cwd: Path


@dataclass(frozen=True)
class Protocol:
    """One agent's hook protocol."""

    agent: str
    event: str
    shell_tool: str
    directory_key: str | None  # tool_input key of a folder relative to `cwd`, if the tool has one
    quiet_allow: str  # stdout when guard has no objection


PROTOCOLS = {
    "claude-code": Protocol("claude-code", "PreToolUse", "Bash", None, ""),
    "gemini-cli": Protocol("gemini-cli", "BeforeTool", "run_shell_command", "directory", "{}\n"),
}


def read_shell_call(protocol: Protocol, text: str) -> ShellCall:
    """The shell call in a hook payload; PayloadError says what does not fit the protocol."""
    if len(text.encode("utf-8", "replace")) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"the payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise PayloadError(f"not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"a JSON {type(payload).__name__}, not an object")
    cwd = _text(payload, "cwd")
    if not cwd or not Path(cwd).is_absolute():
        raise PayloadError('no absolute "cwd"')
    tool = payload.get("tool_name")
    if tool != protocol.shell_tool:
        return ShellCall(None, Path(cwd))
    tool_input = payload.get("tool_input")
    if not isinstance(tool_input, dict):
        raise PayloadError('"tool_input" is not an object')
    command = _text(tool_input, "command")
    if command is None:
        raise PayloadError('no "tool_input.command" string')
    folder = Path(cwd)
    if protocol.directory_key and isinstance(tool_input.get(protocol.directory_key), str):
        folder = folder / tool_input[protocol.directory_key]
    return ShellCall(command, folder)


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def answer(protocol: Protocol, decision: Decision) -> str:
    """The hook's stdout for a decision (exit code 0 in every case, as both protocols prefer)."""
    if decision.verdict in (Verdict.RUN, Verdict.NOTE):
        return protocol.quiet_allow
    verdict = "deny" if decision.verdict is Verdict.REFUSE else "ask"
    lines = [*decision.lines, AGENT_LINE] if decision.verdict is Verdict.REFUSE else list(decision.lines)
    # The agent shows the reason to its user: names from a worktree or a database row are made visible.
    reason = "\n".join(visible(line, COMMAND_LIMIT) for line in lines)
    if protocol.agent == "claude-code":
        body: dict[str, Any] = {
            "hookSpecificOutput": {
                "hookEventName": protocol.event,
                "permissionDecision": verdict,
                "permissionDecisionReason": reason,
            }
        }
    else:
        body = {
            "decision": verdict,
            "reason": reason,
            "systemMessage": visible(decision.lines[0], COMMAND_LIMIT),
        }
    return json.dumps(body) + "\n"
