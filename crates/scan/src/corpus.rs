//! A labelled corpus for measuring the scanner.
