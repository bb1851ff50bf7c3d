"""The call itself, without Flask or I/O: the flow and its loader, the sentences, the engine, TwiML, the
agent's context document, opening hours."""
