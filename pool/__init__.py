"""The pool of FIFO queues: routing, batched SQS calls, provisioning."""
