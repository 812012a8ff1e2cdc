"""Desk's webhook events and the options each takes (zohodesk-oas v1.0 Webhook.json,
`components.schemas.subscriptions`): 56 events. An event with no options takes `null`;
the others take `null` or an object of their own options. The spec's schema marks every
option of an object required, but its own examples send only some (`departmentIds` alone),
so any subset is accepted here."""

from __future__ import annotations

DEPT = ("departmentIds",)
BOTH_DEPT = ("departmentId", "departmentIds")
PREV = ("includePrevState",)

# event -> its options; None: takes no options (null only).
EVENT_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "Ticket_Add": BOTH_DEPT,
    "Ticket_Update": (*BOTH_DEPT, "fields", "includePrevState"),
    "Ticket_Delete": None,
    "Ticket_Thread_Add": (*BOTH_DEPT, "direction"),
    "Ticket_Comment_Add": BOTH_DEPT,
    "Ticket_Comment_Update": BOTH_DEPT,
    "Ticket_Comment_Attachment_Add": None,
    "Ticket_Comment_Attachment_Delete": None,
    "Ticket_Attachment_Add": (),
    "Ticket_Attachment_Update": (),
    "Ticket_Attachment_Delete": DEPT,
    "Ticket_Attachment_Trashed": DEPT,
    "Ticket_Attachment_Restored": DEPT,
    "Ticket_Approval_Add": None,
    "Ticket_Approval_Update": PREV,
    "Contact_Add": None,
    "Contact_Update": PREV,
    "Contact_Delete": None,
    "Account_Add": None,
    "Account_Update": PREV,
    "Account_Delete": None,
    "Agent_Add": None,
    "Agent_Update": PREV,
    "Agent_Delete": None,
    "Agent_Presence_Update": None,
    "Agent_Channel_Preference_Update": None,
    "Department_Add": None,
    "Department_Update": PREV,
    "Task_Add": DEPT,
    "Task_Update": (*DEPT, "includePrevState"),
    "Task_Delete": None,
    "Call_Add": DEPT,
    "Call_Update": (*DEPT, "includePrevState"),
    "Call_Delete": None,
    "Event_Add": DEPT,
    "Event_Update": (*DEPT, "includePrevState"),
    "Event_Delete": None,
    "TimeEntry_Add": None,
    "TimeEntry_Update": PREV,
    "TimeEntry_Delete": None,
    "Article_Add": None,
    "Article_Update": PREV,
    "Article_Delete": None,
    "Article_Translation_Add": None,
    "Article_Translation_Update": PREV,
    "Article_Translation_Delete": None,
    "Article_Feedback_Add": None,
    "KBRootCategory_Add": None,
    "KBRootCategory_Update": PREV,
    "KBRootCategory_Delete": None,
    "KBSection_Add": None,
    "KBSection_Update": PREV,
    "KBSection_Delete": None,
    "IM_Message_Add": DEPT,
    "IM_Message_Status": DEPT,
    "IM_Session_Status": BOTH_DEPT,
}
MAX_UPDATE_FIELDS = 5
DIRECTIONS = ("in", "out")
