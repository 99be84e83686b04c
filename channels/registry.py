"""One line per channel: adding a channel is a module and a line here."""

from channels.base import register
from channels.email import EmailAdapter
from channels.meta import MetaAdapter
from channels.twilio import TwilioAdapter
from channels.web import WebAdapter

register(WebAdapter())
register(EmailAdapter())
register(TwilioAdapter())
register(MetaAdapter())
