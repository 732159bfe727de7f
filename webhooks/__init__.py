"""``mailpool webhooks``: delivery events to producers' endpoints, signed per Standard Webhooks."""
