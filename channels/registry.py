"""One line per channel: adding a channel is a module and a line here."""

from channels.base import register
from channels.web import WebAdapter

register(WebAdapter())
