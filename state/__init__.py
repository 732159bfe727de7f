"""State: what mailpool remembers beyond the queues — each email's status, the suppression
list, 24-hour idempotency keys — in one DynamoDB table ``<prefix>-state``."""
