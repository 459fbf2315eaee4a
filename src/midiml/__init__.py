"""midiml."""
