"""The Flask application: the app factory, its services, Twilio's webhooks, the agents' API and the
supervisors' console."""
