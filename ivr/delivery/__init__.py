"""What we send to the outside world: contexts to a helpdesk (a durable outbox), guides by SMS."""
