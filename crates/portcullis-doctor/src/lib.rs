//! Tells why a TLS connection fails, shows the evidence, and gives the secure fix.
//! (Being built: see issue #4 and ../shared/design/DOCTOR.md.)
