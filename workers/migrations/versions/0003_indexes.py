"""indexes for the store's hot queries at scale

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:00:00

The benchmark's burst of 50,000 showed the store slowing from 185 to 40 complaints/s as the
case store grew: each new case looks for incident candidates of its topic among the last
days' cases, newest first, which without an index on (topic, created_at) sorts every case
of the topic. A reporter's messages (the WhatsApp 24-hour window) and deliveries (the
auto-reply cap) were also read without an index.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_topic_created_at", "cases", ["topic", "created_at"])
    op.create_index("ix_messages_reporter_id", "messages", ["reporter_id"])
    op.create_index("ix_deliveries_reporter_id", "deliveries", ["reporter_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_reporter_id", table_name="deliveries")
    op.drop_index("ix_messages_reporter_id", table_name="messages")
    op.drop_index("ix_cases_topic_created_at", table_name="cases")
