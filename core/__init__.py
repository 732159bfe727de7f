"""The ground floor: the vocabulary every room speaks and imports no room of its own.

The email envelope (the one schema intake writes and senders read), addresses,
attachments, events, sealing; settings, health, logs, backoff, breaker, ordering, network,
and the serving helper every process uses.
"""
