//! Evaluating a checked condition over borrowed facts. Types were settled at load, so a
//! mismatch here is a bug and reads as an error (a refusal), never as a value.
//!
//! What a request controls is read the way applications read it, and read once per
//! evaluation: the path and its segments percent-decoded, the query split on `&` and `;`
//! with keys compared as the most permissive frameworks fold them. Every node, loop item
//! and byte-scanning operation is charged to a budget of [`MAX_STEPS`]; a condition that
//! runs out refuses instead of holding a worker.

use std::borrow::Cow;
use std::cell::Cell;
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
    #[error("the certificate has no CN (test `has(cert.cn)` first)")]
    NoCommonName,
    #[error("the condition needs more than {MAX_STEPS} steps on this request")]
    TooCostly,
    #[error("a value of an unexpected type (a bug in the condition checker)")]
    Type,
}

/// Work one evaluation may do: far above any sensible condition on a sensible request,
/// far below what would hold a worker thread (a few milliseconds).
pub const MAX_STEPS: u32 = 100_000;

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
    /// Decoded path segments, split once per evaluation.
    Segments(&'a [Cow<'a, str>]),
    Roles(RoleSet, &'a [String]),
    Slice(&'a [Val<'a>]),
    Owned(Vec<Val<'a>>),
}

#[derive(Clone, Copy)]
pub(crate) enum Map<'a> {
    Headers(&'a dyn Headers),
    Query(&'a Query<'a>),
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Map::Headers(_) => f.write_str("request.headers"),
            Map::Query(_) => f.write_str("request.query"),
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
            List::Segments(v) => v.len(),
            List::Roles(set, _) => set.len(),
            List::Slice(v) => v.len(),
            List::Owned(v) => v.len(),
        }
    }

    fn items(self) -> Items<'a> {
        match self {
            List::Strs(a, b) => Items::Strs(a.iter().chain(b)),
            List::Ips(v) => Items::Ips(v.iter()),
            List::Segments(v) => Items::Segments(v.iter()),
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
    Segments(std::slice::Iter<'a, Cow<'a, str>>),
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
            Items::Segments(i) => i.next().map(|x| Val::Str(Cow::Borrowed(x.as_ref()))),
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

/// One evaluation: the facts, what was read from them once, and the budget.
pub(crate) struct Ctx<'a> {
    facts: &'a Facts<'a>,
    /// The decoded path and its segments, or why they do not decode.
    path: Result<(Cow<'a, str>, Vec<Cow<'a, str>>), EvalError>,
    query: Query<'a>,
    steps: Cell<u32>,
}

impl Ctx<'_> {
    fn charge(&self, n: usize) -> Result<(), EvalError> {
        let used = self
            .steps
            .get()
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        self.steps.set(used);
        if used > MAX_STEPS {
            return Err(EvalError::TooCostly);
        }
        Ok(())
    }
}

pub(crate) fn run(p: &Program, facts: &Facts<'_>) -> Result<bool, EvalError> {
    debug_assert!(p.slots <= SLOTS);
    let raw = facts.path.map_or("/", |p| p.as_str());
    let ctx = Ctx {
        facts,
        path: decode_path(raw, p.reads_path, p.reads_segments),
        query: match p.reads_query {
            true => Query::parse(facts.query),
            false => Query::default(),
        },
        steps: Cell::new(0),
    };
    let mut locals: Locals<'_> = std::array::from_fn(|_| Ok(Val::Bool(false)));
    match eval(&p.root, &ctx, &mut locals)? {
        Val::Bool(b) => Ok(b),
        _ => Err(EvalError::Type),
    }
}

/// The path and its segments as the application reads them: percent-decoded. The path
/// is canonical, so this is unambiguous (`%2F`, `%5C`, controls and bad UTF-8 were
/// refused before the rules).
fn decode_path(
    path: &str,
    whole: bool,
    segments: bool,
) -> Result<(Cow<'_, str>, Vec<Cow<'_, str>>), EvalError> {
    let segments = match segments {
        true => path[1..]
            .split('/')
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?,
        false => Vec::new(),
    };
    let whole = if whole {
        decode(path)?
    } else {
        Cow::Borrowed(path)
    };
    Ok((whole, segments))
}

fn decode(s: &str) -> Result<Cow<'_, str>, EvalError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| EvalError::NotText("path", s.to_owned()))
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

fn eval<'a>(n: &'a Node, f: &'a Ctx<'a>, locals: &mut Locals<'a>) -> R<'a> {
    f.charge(1)?;
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
            if let (Val::Str(x), Val::Str(y)) = (&a, &b) {
                f.charge((x.len() + y.len()) / 32)?;
            }
            arith(*op, a, b)?
        }
        Node::HasRole(id) => Val::Bool(f.facts.roles.contains(*id)),
        Node::HasCn => Val::Bool(
            f.facts
                .identity
                .ok_or(EvalError::NoCertificate)?
                .common_name
                .is_some(),
        ),
        Node::InList(a, b) => {
            let a = eval(a, f, locals)?;
            let Val::List(list) = eval(b, f, locals)? else {
                return Err(EvalError::Type);
            };
            let mut found = false;
            for item in list.items() {
                f.charge(1)?;
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
                Map::Query(q) => {
                    f.charge(q.pairs.len())?;
                    q.contains(&k)?
                }
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
                Map::Query(q) => {
                    f.charge(q.pairs.len())?;
                    match q.get(&k)? {
                        Some(v) => Val::Str(Cow::Borrowed(v)),
                        None => {
                            return Err(EvalError::NoSuchKey("query parameter", k.into_owned()));
                        }
                    }
                }
            }
        }
        Node::Size(a) => Val::Int(match eval(a, f, locals)? {
            Val::Str(s) => {
                f.charge(s.len() / 32)?;
                s.chars().count() as i64
            }
            Val::List(l) => l.len() as i64,
            _ => return Err(EvalError::Type),
        }),
        Node::StrTest(op, a, b) => {
            let a = string(eval(a, f, locals))?;
            let b = string(eval(b, f, locals))?;
            f.charge(a.len() / 32)?;
            Val::Bool(match op {
                StrTest::StartsWith => a.starts_with(&*b),
                StrTest::EndsWith => a.ends_with(&*b),
                StrTest::Contains => a.contains(&*b),
            })
        }
        Node::Matches(a, re) => {
            let a = string(eval(a, f, locals))?;
            f.charge(a.len() / 8)?;
            Val::Bool(re.is_match(&a))
        }
        Node::Lower(a) | Node::Upper(a) => {
            let a = string(eval(a, f, locals))?;
            f.charge(a.len() / 32)?;
            Val::Str(lower_or_upper(a, matches!(n, Node::Upper(_))))
        }
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

fn comprehension<'a>(l: &'a Loop, f: &'a Ctx<'a>, locals: &mut Locals<'a>) -> R<'a> {
    let Val::List(range) = eval(&l.range, f, locals)? else {
        return Err(EvalError::Type);
    };
    locals[l.accu] = eval(&l.init, f, locals);
    for item in range.items() {
        f.charge(1)?;
        if !boolean(eval(&l.cond, f, locals))? {
            break;
        }
        locals[l.item] = Ok(item);
        locals[l.accu] = eval(&l.step, f, locals);
    }
    eval(&l.result, f, locals)
}

fn var<'a>(v: Var, c: &'a Ctx<'a>) -> R<'a> {
    let f = c.facts;
    let s = |x: &'a str| Ok(Val::Str(Cow::Borrowed(x)));
    let strs = |x: &'a [String]| Ok(Val::List(List::Strs(x, &[])));
    let id = || f.identity.ok_or(EvalError::NoCertificate);
    let ts = |secs: i64| {
        Timestamp::from_second(secs)
            .map(Val::Time)
            .map_err(|_| EvalError::TimeRange)
    };
    match v {
        // No CN is not an empty CN: `'/users/' + cert.cn` must not become `/users/`.
        Var::Cn => s(id()?
            .common_name
            .as_deref()
            .ok_or(EvalError::NoCommonName)?),
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
        Var::Path => match &c.path {
            Ok((path, _)) => Ok(Val::Str(Cow::Borrowed(path.as_ref()))),
            Err(e) => Err(e.clone()),
        },
        Var::Segments => match &c.path {
            Ok((_, segments)) => Ok(Val::List(List::Segments(segments))),
            Err(e) => Err(e.clone()),
        },
        Var::Query => Ok(Val::Map(Map::Query(&c.query))),
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

/// The query string as applications read it: pairs split on `&` and on `;` (which Rack
/// before 3, Go before 1.17 and Python before 3.9.2 also treat as a separator), `+` a
/// space, `%XX` a byte, UTF-8 required. Keys are compared folded the way the most
/// permissive frameworks fold them (ASCII case ignored; `.`, space, `[` and `-` read as
/// `_`, as PHP does), so `user`, `User` and `us%65r` are one key: reading a key given
/// twice in any such spelling is an error, since frameworks disagree on which one wins.
/// A key that does not decode makes every lookup an error: it might be the one asked for.
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    /// Folded key, and the value (`None`: not text).
    pairs: Vec<(String, Option<Cow<'a, str>>)>,
    undecodable_key: Option<String>,
}

impl<'a> Query<'a> {
    fn parse(q: &'a str) -> Query<'a> {
        let mut query = Query::default();
        for pair in q.split(['&', ';']).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match form_decode(k) {
                Some(key) => query.pairs.push((fold(&key), form_decode(v))),
                None => {
                    query.undecodable_key.get_or_insert_with(|| k.to_owned());
                }
            }
        }
        query
    }

    fn matching(
        &self,
        key: &str,
    ) -> Result<impl Iterator<Item = &Option<Cow<'a, str>>>, EvalError> {
        if let Some(k) = &self.undecodable_key {
            return Err(EvalError::NotText("query parameter", k.clone()));
        }
        let key = fold(key);
        Ok(self
            .pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    fn contains(&self, key: &str) -> Result<bool, EvalError> {
        Ok(self.matching(key)?.next().is_some())
    }

    fn get(&self, key: &str) -> Result<Option<&str>, EvalError> {
        let mut found = self.matching(key)?;
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(EvalError::Repeated("query parameter", key.to_owned())),
            (Some(Some(v)), None) => Ok(Some(v)),
            (Some(None), None) => Err(EvalError::NotText("query parameter", key.to_owned())),
        }
    }
}

fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' | ' ' | '[' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
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
