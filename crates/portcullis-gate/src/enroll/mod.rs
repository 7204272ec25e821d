//! Online enrolment, both sides of one small protocol: the gate issues (`server`, for
//! `[enroll]`), and `portcullis enroll` / `portcullis renew` ask (`client`).

pub mod client;
mod server;

pub(crate) use server::Enroller;
