"""The text form of graphs: the printer and the parser."""
