"""One line per provider sender: importing this module registers them all."""
