"""The terminal screen model: an emulator fast enough for a PTY, its scrollback and replay."""
