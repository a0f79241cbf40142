"""Power buttons by state, as Proxmox's own GUI offers them, and the questions asked before acting."""

from dataclasses import dataclass

from django import template

from ..choices import GuestStatus, GuestType, PowerAction

register = template.Library()

# What an action does to the guest, said before it runs (single guest; {guest} is "VM 101 (web-1)").
QUESTIONS = {
    PowerAction.SHUTDOWN: "Shut down {guest}? Its operating system is asked to power off; if it has not "
                          "within 60 s it is stopped hard.",
    PowerAction.REBOOT: "Reboot {guest}? Its services are interrupted while it restarts.",
    PowerAction.STOP: "Stop {guest} at once? Like pulling the power plug: unsaved data in it is lost.",
    PowerAction.RESET: "Reset {guest}? Like pressing the reset button: unsaved data in it is lost.",
    PowerAction.SUSPEND: "Suspend {guest}? It stops running until it is resumed.",
}
# The same for a selection ({count} guests, listed by name in the dialog).
BULK_QUESTIONS = {
    PowerAction.SHUTDOWN: "Shut down {count} guest{s}? Each is asked to power off and stopped hard after 60 s.",
    PowerAction.REBOOT: "Reboot {count} guest{s}? Their services are interrupted while they restart.",
    PowerAction.STOP: "Stop {count} guest{s} at once? Unsaved data in them is lost.",
    PowerAction.RESET: "Reset {count} guest{s}? Unsaved data in them is lost.",
    PowerAction.SUSPEND: "Suspend {count} guest{s}? They stop running until resumed.",
}
_DANGER = {PowerAction.STOP, PowerAction.RESET}
_ORDER = [PowerAction.START, PowerAction.RESUME, PowerAction.SHUTDOWN, PowerAction.REBOOT, PowerAction.SUSPEND,
          PowerAction.STOP, PowerAction.RESET]
# QMP states in which the guest's process is there but not running: Proxmox offers Resume, not Start.
_RESUMABLE = {GuestStatus.PAUSED, GuestStatus.SUSPENDED, GuestStatus.PRELAUNCH}


@dataclass
class PowerButton:
    action: str
    label: str
    enabled: bool = True
    reason: str = ""          # why it is disabled (the button's title)
    danger: bool = False
    question: str = ""        # asked in the page's dialog before the request; empty: no question
    title: str = ""


def _refusal(guest, action: str) -> str:
    """Why `action` makes no sense in the guest's current state, or "" when it does."""
    status = guest.status
    if guest.template:
        return "a template cannot run; clone it to get a guest you can start"
    if status == GuestStatus.UNKNOWN:
        return ""  # state not known (node unreachable?): let Proxmox answer
    if action == PowerAction.START:
        return "it is already running" if status != GuestStatus.STOPPED else ""
    if action == PowerAction.RESUME:
        return "" if status in _RESUMABLE else "it is not paused"
    if status == GuestStatus.STOPPED:
        return "it is not running"
    if action in (PowerAction.SHUTDOWN, PowerAction.REBOOT) and status in _RESUMABLE:
        return "it is paused; resume it first, or stop it"
    if action == PowerAction.SUSPEND and status in _RESUMABLE:
        return "it is already paused"
    return ""


def _primary(guest) -> list[str]:
    """The one or two actions the header shows as buttons (Proxmox: Start or Resume, else Shutdown)."""
    if guest.template:
        return []
    if guest.status == GuestStatus.STOPPED:
        return [PowerAction.START]
    if guest.status in _RESUMABLE:
        return [PowerAction.RESUME]
    if guest.status == GuestStatus.RUNNING:
        return [PowerAction.SHUTDOWN, PowerAction.REBOOT]
    return [PowerAction.START, PowerAction.SHUTDOWN]


@register.simple_tag
def power_buttons(guest) -> dict:
    """{"primary": [PowerButton], "menu": [PowerButton]}: the menu holds every other action the
    guest type has (disabled, with the reason, when the state makes it pointless)."""
    name = f"{guest.kind} {guest}"
    primary = _primary(guest)
    buttons = {"primary": [], "menu": []}
    for action in _ORDER:
        if action == PowerAction.RESET and guest.type == GuestType.LXC:
            continue  # containers have no reset (Proxmox offers reboot)
        reason = _refusal(guest, action)
        question = QUESTIONS.get(action, "")
        button = PowerButton(action=action.value, label=action.label, enabled=not reason, reason=reason,
                             danger=action in _DANGER, question=question.format(guest=name),
                             title=f"{action.label} {name}" if question else "")
        buttons["primary" if action in primary else "menu"].append(button)
    return buttons


@register.simple_tag
def bulk_power_question(action: str) -> dict:
    """The dialog's title and text for a bulk action ({count}, {s} filled in by confirm.js)."""
    question = BULK_QUESTIONS.get(action, "")
    if not question:
        return {}
    return {"title": f"{PowerAction(action).label} {{count}} guest{{s}}", "text": question,
            "button": PowerAction(action).label}
