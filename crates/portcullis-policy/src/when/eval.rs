//! Evaluating a checked condition over borrowed facts. Types were settled at load, so a
//! mismatch here is a bug and reads as an error (a refusal), never as a value.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use super::check::{Arith, Cmp, Loop, Node, Part, Program, StrTest, Var};
use super::{Facts, HeaderValue, Headers};
use crate::policy::RoleSet;

/// Why a condition could not be evaluated. The rule that holds it refuses the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    #[error("the condition reads `cert` but the client sent no certificate")]
    NoCertificate,
    #[error("no {0} {1:?}")]
    NoSuchKey(&'static str, String),
    #[error("the {0} {1:?} was sent more than once, so which one counts is ambiguous")]
    Repeated(&'static str, String),
    #[error("the {0} {1:?} is not valid text")]
    NotText(&'static str, String),
    #[error("index {0} is out of range for a list of {1}")]
    OutOfRange(i64, usize),
    #[error("integer overflow")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("{0:?} is not an integer")]
    NotAnInt(String),
    #[error("a timestamp or duration out of range")]
    TimeRange,
    #[error("a value of an unexpected type (a bug in the condition checker)")]
    Type,
}

/// A value during evaluation, borrowing the facts and the program where it can.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    Time(Timestamp),
    Dur(SignedDuration),
    List(List<'a>),
    Map(Map<'a>),
}

#[derive(Debug, Clone)]
pub(crate) enum List<'a> {
    /// One list of strings, or two read as one (subject emails, then email SANs).
    Strs(&'a [String], &'a [String]),
    Ips(&'a [IpAddr]),
    /// The canonical path without its leading '/': segments split on demand.
    Segments(&'a str),
    Roles(RoleSet, &'a [String]),
    Slice(&'a [Val<'a>]),
    Owned(Vec<Val<'a>>),
}

#[derive(Clone, Copy)]
pub(crate) enum Map<'a> {
    Headers(&'a dyn Headers),
    Query(&'a str),
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Map::Headers(_) => f.write_str("request.headers"),
            Map::Query(q) => write!(f, "request.query({q:?})"),
        }
    }
}

impl<'a> Val<'a> {
    pub(crate) fn list(items: Vec<Val<'a>>) -> Val<'a> {
        Val::List(List::Owned(items))
    }

    /// The same value, borrowing what `self` owns: constants cost no copy.
    fn reborrow(&self) -> Val<'_> {
        match self {
            Val::Str(s) => Val::Str(Cow::Borrowed(s)),
            Val::List(List::Owned(v)) => Val::List(List::Slice(v)),
            other => other.clone(),
        }
    }
}

impl<'a> List<'a> {
    fn len(&self) -> usize {
        match self {
            List::Strs(a, b) => a.len() + b.len(),
            List::Ips(v) => v.len(),
            List::Segments(p) => p.split('/').count(),
            List::Roles(set, _) => set.len(),
            List::Slice(v) => v.len(),
            List::Owned(v) => v.len(),
        }
    }

    fn items(self) -> Items<'a> {
        match self {
            List::Strs(a, b) => Items::Strs(a.iter().chain(b)),
            List::Ips(v) => Items::Ips(v.iter()),
            List::Segments(p) => Items::Segments(p.split('/')),
            List::Roles(set, names) => Items::Roles(set, names.iter().enumerate()),
            List::Slice(v) => Items::Slice(v.iter()),
            List::Owned(v) => Items::Owned(v.into_iter()),
        }
    }
}

/// The items of a [`List`], without boxing an iterator per loop.
pub(crate) enum Items<'a> {
    Strs(std::iter::Chain<std::slice::Iter<'a, String>, std::slice::Iter<'a, String>>),
    Ips(std::slice::Iter<'a, IpAddr>),
    Segments(std::str::Split<'a, char>),
    Roles(RoleSet, std::iter::Enumerate<std::slice::Iter<'a, String>>),
    Slice(std::slice::Iter<'a, Val<'a>>),
    Owned(std::vec::IntoIter<Val<'a>>),
}

impl<'a> Iterator for Items<'a> {
    type Item = Val<'a>;

    fn next(&mut self) -> Option<Val<'a>> {
        let s = |x: &'a String| Val::Str(Cow::Borrowed(x.as_str()));
        match self {
            Items::Strs(i) => i.next().map(s),
            // Rare (an IP SAN in a condition): the address is printed as Go and OpenSSL do.
            Items::Ips(i) => i.next().map(|ip| Val::Str(ip.to_string().into())),
            Items::Segments(i) => i.next().map(|x| Val::Str(Cow::Borrowed(x))),
            Items::Roles(set, i) => i.find(|(n, _)| set.has_index(*n)).map(|(_, n)| s(n)),
            Items::Slice(i) => i.next().map(Val::reborrow),
            Items::Owned(i) => i.next(),
        }
    }
}

type R<'a> = Result<Val<'a>, EvalError>;

/// Comprehension variables are numbered by nesting depth: two levels, two slots each.
const SLOTS: usize = 4;

/// An accumulator may hold an error: CEL's `exists` is true if some item is, even when
/// another item's test failed.
type Locals<'a> = [R<'a>; SLOTS];

pub(crate) fn run(p: &Program, facts: &Facts<'_>) -> Result<bool, EvalError> {
    debug_assert!(p.slots <= SLOTS);
    let mut locals: Locals<'_> = std::array::from_fn(|_| Ok(Val::Bool(false)));
    match eval(&p.root, facts, &mut locals)? {
        Val::Bool(b) => Ok(b),
        _ => Err(EvalError::Type),
    }
}

fn boolean(v: R<'_>) -> Result<bool, EvalError> {
    match v? {
        Val::Bool(b) => Ok(b),
        _ => Err(EvalError::Type),
    }
}

fn int(v: R<'_>) -> Result<i64, EvalError> {
    match v? {
        Val::Int(i) => Ok(i),
        _ => Err(EvalError::Type),
    }
}

fn string(v: R<'_>) -> Result<Cow<'_, str>, EvalError> {
    match v? {
        Val::Str(s) => Ok(s),
        _ => Err(EvalError::Type),
    }
}

fn time(v: R<'_>) -> Result<Timestamp, EvalError> {
    match v? {
        Val::Time(t) => Ok(t),
        _ => Err(EvalError::Type),
    }
}

fn eval<'a>(n: &'a Node, f: &Facts<'a>, locals: &mut Locals<'a>) -> R<'a> {
    Ok(match n {
        Node::Const(v) => v.reborrow(),
        Node::Var(v) => var(*v, f)?,
        Node::Local(slot) => locals[*slot].clone()?,
        Node::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(eval(i, f, locals)?);
            }
            Val::list(out)
        }
        Node::Not(a) => Val::Bool(!boolean(eval(a, f, locals))?),
        Node::Neg(a) => Val::Int(
            int(eval(a, f, locals))?
                .checked_neg()
                .ok_or(EvalError::Overflow)?,
        ),
        Node::NegDur(a) => match eval(a, f, locals)? {
            Val::Dur(d) => Val::Dur(d.checked_neg().ok_or(EvalError::TimeRange)?),
            _ => return Err(EvalError::Type),
        },
        // CEL's logic: an error on one side is absorbed when the other side decides.
        Node::And(a, b) => {
            let l = boolean(eval(a, f, locals));
            if l == Ok(false) {
                return Ok(Val::Bool(false));
            }
            match (l, boolean(eval(b, f, locals))) {
                (_, Ok(false)) => Val::Bool(false),
                (Ok(true), Ok(true)) => Val::Bool(true),
                (Err(e), _) | (_, Err(e)) => return Err(e),
                (Ok(false), _) => Val::Bool(false),
            }
        }
        Node::Or(a, b) => {
            let l = boolean(eval(a, f, locals));
            if l == Ok(true) {
                return Ok(Val::Bool(true));
            }
            match (l, boolean(eval(b, f, locals))) {
                (_, Ok(true)) => Val::Bool(true),
                (Ok(false), Ok(false)) => Val::Bool(false),
                (Err(e), _) | (_, Err(e)) => return Err(e),
                (Ok(true), _) => Val::Bool(true),
            }
        }
        Node::Cond(parts) => {
            let [c, a, b] = &**parts;
            match boolean(eval(c, f, locals))? {
                true => eval(a, f, locals)?,
                false => eval(b, f, locals)?,
            }
        }
        Node::NotStrictlyFalse(a) => Val::Bool(boolean(eval(a, f, locals)).unwrap_or(true)),
        Node::Cmp(op, a, b) => {
            let (a, b) = (eval(a, f, locals)?, eval(b, f, locals)?);
            Val::Bool(compare(*op, &a, &b)?)
        }
        Node::Arith(op, a, b) => {
            let (a, b) = (eval(a, f, locals)?, eval(b, f, locals)?);
            arith(*op, a, b)?
        }
        Node::HasRole(id) => Val::Bool(f.roles.contains(*id)),
        Node::InList(a, b) => {
            let a = eval(a, f, locals)?;
            let Val::List(list) = eval(b, f, locals)? else {
                return Err(EvalError::Type);
            };
            let mut found = false;
            for item in list.items() {
                if equal(&a, &item)? {
                    found = true;
                    break;
                }
            }
            Val::Bool(found)
        }
        Node::InMap(k, m) => {
            let k = string(eval(k, f, locals))?;
            let Val::Map(m) = eval(m, f, locals)? else {
                return Err(EvalError::Type);
            };
            Val::Bool(match m {
                Map::Headers(h) => h.get(&k.to_ascii_lowercase()) != HeaderValue::Absent,
                Map::Query(q) => query(q, &k)?.is_some(),
            })
        }
        Node::Index(l, i) => {
            let Val::List(list) = eval(l, f, locals)? else {
                return Err(EvalError::Type);
            };
            let i = int(eval(i, f, locals))?;
            let len = list.len();
            usize::try_from(i)
                .ok()
                .and_then(|i| list.items().nth(i))
                .ok_or(EvalError::OutOfRange(i, len))?
        }
        Node::Lookup(m, k) => {
            let Val::Map(m) = eval(m, f, locals)? else {
                return Err(EvalError::Type);
            };
            let k = string(eval(k, f, locals))?;
            match m {
                Map::Headers(h) => {
                    let name = k.to_ascii_lowercase();
                    match h.get(&name) {
                        HeaderValue::One(v) => Val::Str(Cow::Borrowed(v)),
                        HeaderValue::Absent => return Err(EvalError::NoSuchKey("header", name)),
                        HeaderValue::Repeated => return Err(EvalError::Repeated("header", name)),
                        HeaderValue::NotText => return Err(EvalError::NotText("header", name)),
                    }
                }
                Map::Query(q) => match query(q, &k)? {
                    Some(v) => Val::Str(v),
                    None => return Err(EvalError::NoSuchKey("query parameter", k.into_owned())),
                },
            }
        }
        Node::Size(a) => Val::Int(match eval(a, f, locals)? {
            Val::Str(s) => s.chars().count() as i64,
            Val::List(l) => l.len() as i64,
            _ => return Err(EvalError::Type),
        }),
        Node::StrTest(op, a, b) => {
            let a = string(eval(a, f, locals))?;
            let b = string(eval(b, f, locals))?;
            Val::Bool(match op {
                StrTest::StartsWith => a.starts_with(&*b),
                StrTest::EndsWith => a.ends_with(&*b),
                StrTest::Contains => a.contains(&*b),
            })
        }
        Node::Matches(a, re) => Val::Bool(re.is_match(&string(eval(a, f, locals))?)),
        Node::Lower(a) => Val::Str(lower_or_upper(string(eval(a, f, locals))?, false)),
        Node::Upper(a) => Val::Str(lower_or_upper(string(eval(a, f, locals))?, true)),
        Node::Part(part, t, tz) => {
            let dt = tz.to_datetime(time(eval(t, f, locals))?);
            Val::Int(i64::from(match part {
                Part::FullYear => dt.year(),
                Part::Month => i16::from(dt.month()) - 1,
                Part::DayOfYear => dt.day_of_year() - 1,
                Part::DayOfMonth => i16::from(dt.day()) - 1,
                Part::Date => i16::from(dt.day()),
                Part::DayOfWeek => i16::from(dt.weekday().to_sunday_zero_offset()),
                Part::Hours => i16::from(dt.hour()),
                Part::Minutes => i16::from(dt.minute()),
                Part::Seconds => i16::from(dt.second()),
                Part::Milliseconds => dt.millisecond(),
            }))
        }
        Node::IntOf(a) => match eval(a, f, locals)? {
            Val::Str(s) => Val::Int(s.parse().map_err(|_| EvalError::NotAnInt(s.into_owned()))?),
            Val::Time(t) => Val::Int(t.as_second()),
            _ => return Err(EvalError::Type),
        },
        Node::StringOf(a) => Val::Str(
            match eval(a, f, locals)? {
                Val::Int(i) => i.to_string(),
                Val::Time(t) => t.to_string(),
                Val::Dur(d) => duration_text(d),
                _ => return Err(EvalError::Type),
            }
            .into(),
        ),
        Node::Loop(l) => comprehension(l, f, locals)?,
    })
}

fn comprehension<'a>(l: &'a Loop, f: &Facts<'a>, locals: &mut Locals<'a>) -> R<'a> {
    let Val::List(range) = eval(&l.range, f, locals)? else {
        return Err(EvalError::Type);
    };
    locals[l.accu] = eval(&l.init, f, locals);
    for item in range.items() {
        if !boolean(eval(&l.cond, f, locals))? {
            break;
        }
        locals[l.item] = Ok(item);
        locals[l.accu] = eval(&l.step, f, locals);
    }
    eval(&l.result, f, locals)
}

fn var<'a>(v: Var, f: &Facts<'a>) -> R<'a> {
    let s = |x: &'a str| Ok(Val::Str(Cow::Borrowed(x)));
    let strs = |x: &'a [String]| Ok(Val::List(List::Strs(x, &[])));
    let id = || f.identity.ok_or(EvalError::NoCertificate);
    let ts = |secs: i64| {
        Timestamp::from_second(secs)
            .map(Val::Time)
            .map_err(|_| EvalError::TimeRange)
    };
    match v {
        Var::Cn => s(id()?.common_name.as_deref().unwrap_or("")),
        Var::Serial => s(&id()?.serial),
        Var::Fingerprint => s(&id()?.fingerprint_sha256),
        Var::Issuer => s(&id()?.issuer),
        Var::Subject => s(&id()?.subject),
        Var::O => strs(&id()?.organizations),
        Var::Ou => strs(&id()?.organizational_units),
        Var::Emails => {
            let id = id()?;
            Ok(Val::List(List::Strs(&id.emails, &id.email_sans)))
        }
        Var::Dns => strs(&id()?.dns_sans),
        Var::Uris => strs(&id()?.uri_sans),
        Var::Ips => Ok(Val::List(List::Ips(&id()?.ip_sans))),
        Var::NotBefore => ts(id()?.not_before),
        Var::NotAfter => ts(id()?.not_after),
        Var::Roles => Ok(Val::List(List::Roles(f.roles, f.role_names))),
        Var::Method => s(f.method),
        Var::Host => s(f.host),
        Var::Path => s(f.path.map_or("/", |p| p.as_str())),
        Var::Segments => Ok(Val::List(List::Segments(
            f.path.map_or("", |p| &p.as_str()[1..]),
        ))),
        Var::Query => Ok(Val::Map(Map::Query(f.query))),
        Var::Headers => Ok(Val::Map(Map::Headers(f.headers))),
        Var::Now => Ok(Val::Time(f.now)),
    }
}

fn equal(a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    Ok(match (a, b) {
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Int(a), Val::Int(b)) => a == b,
        (Val::Str(a), Val::Str(b)) => a == b,
        (Val::Time(a), Val::Time(b)) => a == b,
        (Val::Dur(a), Val::Dur(b)) => a == b,
        (Val::List(a), Val::List(b)) => {
            if a.len() != b.len() {
                return Ok(false);
            }
            for (x, y) in a.clone().items().zip(b.clone().items()) {
                if !equal(&x, &y)? {
                    return Ok(false);
                }
            }
            true
        }
        _ => return Err(EvalError::Type),
    })
}

fn compare(op: Cmp, a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    use std::cmp::Ordering;
    let ord = match op {
        Cmp::Eq => return equal(a, b),
        Cmp::Ne => return equal(a, b).map(|e| !e),
        _ => match (a, b) {
            (Val::Int(a), Val::Int(b)) => a.cmp(b),
            (Val::Str(a), Val::Str(b)) => a.cmp(b),
            (Val::Time(a), Val::Time(b)) => a.cmp(b),
            (Val::Dur(a), Val::Dur(b)) => a.cmp(b),
            _ => return Err(EvalError::Type),
        },
    };
    Ok(match op {
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

fn arith<'a>(op: Arith, a: Val<'a>, b: Val<'a>) -> R<'a> {
    let over = EvalError::Overflow;
    Ok(match (op, a, b) {
        (Arith::Add, Val::Int(a), Val::Int(b)) => Val::Int(a.checked_add(b).ok_or(over)?),
        (Arith::Sub, Val::Int(a), Val::Int(b)) => Val::Int(a.checked_sub(b).ok_or(over)?),
        (Arith::Mul, Val::Int(a), Val::Int(b)) => Val::Int(a.checked_mul(b).ok_or(over)?),
        (Arith::Div | Arith::Rem, Val::Int(_), Val::Int(0)) => {
            return Err(EvalError::DivisionByZero);
        }
        (Arith::Div, Val::Int(a), Val::Int(b)) => Val::Int(a.checked_div(b).ok_or(over)?),
        (Arith::Rem, Val::Int(a), Val::Int(b)) => Val::Int(a.checked_rem(b).ok_or(over)?),
        (Arith::Concat, Val::Str(a), Val::Str(b)) => Val::Str(match (a, b) {
            (a, b) if b.is_empty() => a,
            (a, b) if a.is_empty() => b,
            (a, b) => Cow::Owned(a.into_owned() + &b),
        }),
        (Arith::TimePlusDur, Val::Time(t), Val::Dur(d)) => {
            Val::Time(t.checked_add(d).map_err(|_| EvalError::TimeRange)?)
        }
        (Arith::TimeMinusDur, Val::Time(t), Val::Dur(d)) => {
            Val::Time(t.checked_sub(d).map_err(|_| EvalError::TimeRange)?)
        }
        (Arith::TimeMinusTime, Val::Time(a), Val::Time(b)) => Val::Dur(a.duration_since(b)),
        (Arith::DurPlusDur, Val::Dur(a), Val::Dur(b)) => {
            Val::Dur(a.checked_add(b).ok_or(EvalError::TimeRange)?)
        }
        (Arith::DurMinusDur, Val::Dur(a), Val::Dur(b)) => {
            Val::Dur(a.checked_sub(b).ok_or(EvalError::TimeRange)?)
        }
        _ => return Err(EvalError::Type),
    })
}

fn lower_or_upper(s: Cow<'_, str>, upper: bool) -> Cow<'_, str> {
    let unchanged = match upper {
        true => !s.bytes().any(|b| b.is_ascii_lowercase()),
        false => !s.bytes().any(|b| b.is_ascii_uppercase()),
    };
    match (unchanged, upper) {
        (true, _) => s,
        (false, true) => Cow::Owned(s.to_ascii_uppercase()),
        (false, false) => Cow::Owned(s.to_ascii_lowercase()),
    }
}

/// CEL's text for a duration: seconds, with a fraction when there is one (`5400s`,
/// `1.5s`).
fn duration_text(d: SignedDuration) -> String {
    let nanos = d.subsec_nanos().unsigned_abs();
    let sign = if d.is_negative() { "-" } else { "" };
    let secs = d.as_secs().unsigned_abs();
    match nanos {
        0 => format!("{sign}{secs}s"),
        n => format!("{sign}{secs}.{}s", format!("{n:09}").trim_end_matches('0')),
    }
}

/// The value of query parameter `key`, decoded as HTML forms and every web framework do
/// (`+` is a space, `%XX` a byte, UTF-8 required). A key given twice, in any spelling
/// (`us%65r` is `user`), is an error: frameworks disagree on which one wins. A key that
/// does not decode is an error too, since it might be the one asked for.
fn query<'a>(q: &'a str, key: &str) -> Result<Option<Cow<'a, str>>, EvalError> {
    let mut found = None;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k =
            form_decode(k).ok_or_else(|| EvalError::NotText("query parameter", k.to_owned()))?;
        if k != key {
            continue;
        }
        if found.is_some() {
            return Err(EvalError::Repeated("query parameter", key.to_owned()));
        }
        found = Some(
            form_decode(v).ok_or_else(|| EvalError::NotText("query parameter", key.to_owned()))?,
        );
    }
    Ok(found)
}

fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| Cow::Owned(c.into_owned()))
}
