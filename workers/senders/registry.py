"""One line per provider sender: importing this module registers them all."""

import workers.senders.meta  # WhatsApp: the Cloud API, or Twilio for its reporters
import workers.senders.smtp  # email, through ADUAN_SMTP_RELAY
import workers.senders.twilio  # noqa: F401 - SMS
