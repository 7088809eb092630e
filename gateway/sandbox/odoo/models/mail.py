"""Chatter: mail.message, mail.message.subtype and the ``message_post`` of mail.thread (Odoo 17 mail).

``message_post`` is a record method taking keyword arguments only; over
JSON-RPC/XML-RPC it answers the new message's id (``@api.returns('mail.message',
lambda value: value.id)``), over JSON-2 a list of ids.  Posting needs the
document's ``_mail_post_access`` right ('write' by default, as mail.thread).
A plain-text body is escaped and wrapped in a paragraph, as Odoo's html
sanitizer stores it.  Not modelled: followers, notifications, attachments,
partners and authors.
"""
from __future__ import annotations

import html
from typing import Any

from ..errors import ValidationError
from ..fields import Boolean, Char, Datetime, Html, Integer, Many2one, Selection, now_string
from ..load import xmlid_to_res_id
from ..orm import BaseModel
from .groups import INTERNAL, SETTINGS, acl

MESSAGE_TYPES = [("email", "Email"), ("comment", "Comment"), ("email_outgoing", "Email Outgoing"),
                 ("notification", "System notification"), ("auto_comment", "Automated Targeted Notification"),
                 ("user_notification", "User Specific Notification")]


class MailMessageSubtype(BaseModel):
    _name = "mail.message.subtype"
    _description = "Message subtypes"
    _order = "sequence, id"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("Message Type", required=True)
    internal = Boolean("Internal Only")
    sequence = Integer("Sequence", default=1)


class MailMessage(BaseModel):
    _name = "mail.message"
    _description = "Message"
    _order = "id desc"
    _rec_name = "record_name"
    _access = acl([INTERNAL], [INTERNAL])
    subject = Char("Subject")
    date = Datetime("Date", default=now_string)
    body = Html("Contents", default="")
    model = Char("Related Document Model")
    res_id = Integer("Related Document ID")
    record_name = Char("Message Record Name")
    message_type = Selection(MESSAGE_TYPES, "Type", default="email", required=True)
    subtype_id = Many2one("mail.message.subtype", "Subtype", ondelete="set null")
    author_user_id = Many2one("res.users", "Created by", default=lambda env: env.uid)


def _as_html(body: Any, body_is_html: bool) -> str:
    text = str(body or "")
    if not text:
        return ""
    if not body_is_html:
        text = html.escape(text, quote=False).replace("\n", "<br>")
    return text if text.lstrip().startswith("<") else f"<p>{text}</p>"


class MailThread:
    """The mail.thread mixin: put it before BaseModel in a model's bases."""

    _mail_post_access = "write"

    def message_post(self, *, body: Any = "", subject: Any = None, message_type: str = "notification",
                     email_from: Any = None, author_id: Any = None, parent_id: Any = False,
                     subtype_xmlid: str | None = None, subtype_id: Any = False, partner_ids: Any = None,
                     attachments: Any = None, attachment_ids: Any = None, body_is_html: bool = False,
                     **kwargs: Any) -> BaseModel:
        self.ensure_one()  # type: ignore[attr-defined]
        forbidden = {"model", "res_id", "subtype"} & set(kwargs)
        if forbidden:
            raise ValueError("Those values are not supported when posting or notifying: %s"
                             % ", ".join(sorted(forbidden)))
        if message_type == "user_notification":
            raise ValueError("Posting a message with channels as listeners is not supported since Odoo 14.3+. "
                             "Please first subscribe the channels and then post the message.")
        self.check_access_rights(self._mail_post_access)  # type: ignore[attr-defined]
        record = self.exists()  # type: ignore[attr-defined]
        if not record:
            raise self._missing_error()  # type: ignore[attr-defined]
        env = self.env  # type: ignore[attr-defined]
        if not subtype_id:
            xmlid = subtype_xmlid or "mail.mt_note"
            subtype_id = xmlid_to_res_id(env, xmlid, "mail.message.subtype")
            if not subtype_id:
                raise ValueError("External ID not found in the system: %s" % xmlid)
        if message_type not in dict(MESSAGE_TYPES):
            raise ValidationError("Wrong value for mail.message.message_type: %r" % message_type)
        values = {"body": _as_html(body, body_is_html), "subject": subject or False, "model": self._name,
                  "res_id": self.id, "record_name": record._display_name(), "message_type": message_type,
                  "subtype_id": subtype_id, **kwargs}
        return env["mail.message"].sudo().create(values)

    message_post._returns_id = True  # type: ignore[attr-defined]
