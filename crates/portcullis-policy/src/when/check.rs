//! From CEL source to a typed tree: parse with cel-rust, then check every node against the
//! variables of the scope and the functions below. Anything not listed is an error at load,
//! with its position, rather than a surprise at request time.

use std::fmt;

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, LiteralValue, operators};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::eval::Val;
use super::{MAX_SOURCE, Scope, WhenError};
use crate::policy::RoleId;

/// How deep `all`/`exists`/`exists_one` may nest: enough for "some URI of some…", and it
/// keeps the cost of an expression a small power of the request's list sizes.
const MAX_NESTED_MACROS: usize = 2;

/// How deep the checked tree may be: evaluation recurses once per level, on a worker
/// thread's stack. A chain of 64 `&&` is already an unreadable condition.
const MAX_DEPTH: usize = 64;

/// Stack for parsing: cel-rust's ANTLR parser recurses once per operator of a chain
/// (`1+1+…`), which its own depth limit does not count; 4 KiB of source needs well under
/// this. Only touched pages are used.
const PARSE_STACK: usize = 64 << 20;

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Program {
    pub source: String,
    pub root: Node,
    pub reads_cert: bool,
    /// Whether `now` is read.
    pub reads_now: bool,
    /// Whether `request.path` is read (decoded once per evaluation).
    pub reads_path: bool,
    /// Whether `request.segments` is read (split and decoded once per evaluation).
    pub reads_segments: bool,
    /// Whether `request.query` is read (parsed once per evaluation).
    pub reads_query: bool,
    /// Comprehension variables, by slot.
    pub slots: usize,
}

/// The CEL types conditions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Str,
    Time,
    Dur,
    List(Box<Ty>),
    /// map(string, string): `request.headers`, `request.query`.
    Map,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Str => f.write_str("string"),
            Ty::Time => f.write_str("timestamp"),
            Ty::Dur => f.write_str("duration"),
            Ty::List(e) => write!(f, "list({e})"),
            Ty::Map => f.write_str("map(string, string)"),
        }
    }
}

/// A variable the gate provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    Cn,
    Serial,
    Fingerprint,
    Issuer,
    Subject,
    O,
    Ou,
    Emails,
    Dns,
    Uris,
    Ips,
    NotBefore,
    NotAfter,
    Roles,
    Method,
    Path,
    Host,
    Segments,
    Query,
    Headers,
    Now,
}

const CERT_FIELDS: &[(&str, Var)] = &[
    ("cn", Var::Cn),
    ("serial", Var::Serial),
    ("fingerprint", Var::Fingerprint),
    ("issuer", Var::Issuer),
    ("subject", Var::Subject),
    ("o", Var::O),
    ("ou", Var::Ou),
    ("emails", Var::Emails),
    ("dns", Var::Dns),
    ("uris", Var::Uris),
    ("ips", Var::Ips),
    ("not_before", Var::NotBefore),
    ("not_after", Var::NotAfter),
];

const REQUEST_FIELDS: &[(&str, Var)] = &[
    ("method", Var::Method),
    ("path", Var::Path),
    ("host", Var::Host),
    ("segments", Var::Segments),
    ("query", Var::Query),
    ("headers", Var::Headers),
];

impl Var {
    fn ty(self) -> Ty {
        match self {
            Var::Cn | Var::Serial | Var::Fingerprint | Var::Issuer | Var::Subject => Ty::Str,
            Var::Method | Var::Path | Var::Host => Ty::Str,
            Var::O | Var::Ou | Var::Emails | Var::Dns | Var::Uris | Var::Ips => {
                Ty::List(Box::new(Ty::Str))
            }
            Var::Roles | Var::Segments => Ty::List(Box::new(Ty::Str)),
            Var::NotBefore | Var::NotAfter | Var::Now => Ty::Time,
            Var::Query | Var::Headers => Ty::Map,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Concat,
    TimePlusDur,
    TimeMinusDur,
    TimeMinusTime,
    DurPlusDur,
    DurMinusDur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// Parts of a timestamp, as CEL numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    FullYear,
    /// 0-11.
    Month,
    /// 0-based.
    DayOfYear,
    /// 0-based.
    DayOfMonth,
    /// 1-based.
    Date,
    /// 0 = Sunday.
    DayOfWeek,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
}

const PARTS: &[(&str, Part)] = &[
    ("getFullYear", Part::FullYear),
    ("getMonth", Part::Month),
    ("getDayOfYear", Part::DayOfYear),
    ("getDayOfMonth", Part::DayOfMonth),
    ("getDate", Part::Date),
    ("getDayOfWeek", Part::DayOfWeek),
    ("getHours", Part::Hours),
    ("getMinutes", Part::Minutes),
    ("getSeconds", Part::Seconds),
    ("getMilliseconds", Part::Milliseconds),
];

/// A typed node. Every operation's operand types were checked at compile time, so the
/// evaluator only meets run-time errors (missing keys, overflow), never type confusion.
#[derive(Debug)]
pub(crate) enum Node {
    Const(Val<'static>),
    Var(Var),
    Local(usize),
    List(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    NegDur(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<[Node; 3]>),
    NotStrictlyFalse(Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    /// `'NAME' in roles` with a literal name: one bit test.
    HasRole(RoleId),
    /// `has(cert.cn)`.
    HasCn,
    InList(Box<Node>, Box<Node>),
    InMap(Box<Node>, Box<Node>),
    Index(Box<Node>, Box<Node>),
    Lookup(Box<Node>, Box<Node>),
    Size(Box<Node>),
    StrTest(StrTest, Box<Node>, Box<Node>),
    Matches(Box<Node>, regex::Regex),
    Lower(Box<Node>),
    Upper(Box<Node>),
    Part(Part, Box<Node>, TimeZone),
    IntOf(Box<Node>),
    StringOf(Box<Node>),
    Loop(Box<Loop>),
}

/// A comprehension as the CEL macros expand: fold `step` over `range` into the
/// accumulator while `cond` holds, then `result`.
#[derive(Debug)]
pub(crate) struct Loop {
    pub range: Node,
    pub item: usize,
    pub accu: usize,
    pub init: Node,
    pub cond: Node,
    pub step: Node,
    pub result: Node,
}

struct Checker<'a> {
    source: &'a str,
    info: &'a cel::common::ast::SourceInfo,
    scope: Scope,
    roles: &'a [String],
    /// Comprehension variables in scope: name, slot, type.
    locals: Vec<(String, usize, Ty)>,
    slots: usize,
    nested: usize,
    depth: usize,
    reads_cert: bool,
    reads_now: bool,
    reads_path: bool,
    reads_segments: bool,
    reads_query: bool,
}

type Typed = (Node, Ty);

pub(crate) fn compile(source: &str, scope: Scope, roles: &[String]) -> Result<Program, WhenError> {
    // On a thread of its own, so a long operator chain cannot overflow the caller's stack
    // (a reload runs on a small one); the AST is dropped there too.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(s, || compile_here(source, scope, roles))
            .map_err(|e| error_at(source, 0, format!("cannot start the compiler thread: {e}")))?
            .join()
            .unwrap_or_else(|_| {
                Err(error_at(
                    source,
                    0,
                    "the expression could not be parsed".into(),
                ))
            })
    })
}

fn compile_here(source: &str, scope: Scope, roles: &[String]) -> Result<Program, WhenError> {
    if source.len() > MAX_SOURCE {
        return Err(error_at(
            source,
            0,
            format!("the expression is longer than {MAX_SOURCE} bytes"),
        ));
    }
    if source.trim().is_empty() {
        return Err(error_at(source, 0, "the expression is empty".into()));
    }
    let parser = cel::parser::Parser::new().max_recursion_depth(64);
    let (expr, info) = parser.parse_with_source_info(source).map_err(|errs| {
        let e = errs.errors.first();
        let (line, column) = e.map_or((1, 1), |e| {
            (e.pos.0.max(1) as usize, e.pos.1.max(0) as usize + 1)
        });
        let message = e.map_or("syntax error".into(), |e| e.msg.clone());
        located(source, line, column, message)
    })?;
    let mut c = Checker {
        source,
        info: &info,
        scope,
        roles,
        locals: Vec::new(),
        slots: 0,
        nested: 0,
        depth: 0,
        reads_cert: false,
        reads_now: false,
        reads_path: false,
        reads_segments: false,
        reads_query: false,
    };
    let (root, ty) = c.expr(&expr)?;
    if ty != Ty::Bool {
        return Err(c.err(&expr, format!("a condition must be a bool, this is a {ty}")));
    }
    Ok(Program {
        source: source.to_owned(),
        root,
        reads_cert: c.reads_cert,
        reads_now: c.reads_now,
        reads_path: c.reads_path,
        reads_segments: c.reads_segments,
        reads_query: c.reads_query,
        slots: c.slots,
    })
}

fn error_at(source: &str, offset: usize, message: String) -> WhenError {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    located(source, line, column, message)
}

fn located(source: &str, line: usize, column: usize, message: String) -> WhenError {
    WhenError {
        line,
        column,
        message,
        snippet: source.lines().nth(line - 1).unwrap_or("").to_owned(),
    }
}

fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

impl Checker<'_> {
    fn err(&self, at: &IdedExpr, message: String) -> WhenError {
        // A byte offset; a call's is its opening parenthesis, as in cel-go.
        let mut offset = self.info.offset_for(at.id).map_or(0, |(s, _)| s as usize);
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        error_at(self.source, offset, message)
    }

    fn expect(&mut self, e: &IdedExpr, want: &Ty, what: &str) -> Result<Node, WhenError> {
        let (n, ty) = self.expr(e)?;
        if &ty != want {
            return Err(self.err(e, format!("{what} must be a {want}, this is a {ty}")));
        }
        Ok(n)
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<Typed, WhenError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(
                e,
                format!("the expression nests more than {MAX_DEPTH} deep; split it, or use `in [...]` for long lists of alternatives"),
            ));
        }
        self.depth += 1;
        let typed = self.expr_at_depth(e);
        self.depth -= 1;
        typed
    }

    fn expr_at_depth(&mut self, e: &IdedExpr) -> Result<Typed, WhenError> {
        match &e.expr {
            Expr::Literal(l) => self.literal(e, l),
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(s) => self.select(e, &s.operand, &s.field, s.test),
            Expr::Call(call) => self.call(e, call),
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(self.err(e, "optional list elements are not supported".into()));
                }
                let Some(first) = list.elements.first() else {
                    return Err(self.err(
                        e,
                        "an empty list has no element type here; write the test another way (for example `size(x) == 0`)".into(),
                    ));
                };
                let (n, ty) = self.expr(first)?;
                if !matches!(ty, Ty::Str | Ty::Int) {
                    return Err(self.err(
                        first,
                        format!("list elements must be strings or ints, this is a {ty}"),
                    ));
                }
                let mut nodes = vec![n];
                for el in &list.elements[1..] {
                    nodes.push(self.expect(el, &ty, "every list element")?);
                }
                let node = match nodes.iter().all(|n| matches!(n, Node::Const(_))) {
                    true => Node::Const(Val::list(
                        nodes
                            .into_iter()
                            .filter_map(|n| match n {
                                Node::Const(v) => Some(v),
                                _ => None,
                            })
                            .collect(),
                    )),
                    false => Node::List(nodes),
                };
                Ok((node, Ty::List(Box::new(ty))))
            }
            Expr::Comprehension(c) => self.comprehension(e, c),
            Expr::Map(_) => Err(self.err(e, "map literals are not supported in conditions".into())),
            Expr::Struct(_) => Err(self.err(e, "messages are not supported in conditions".into())),
            Expr::Unspecified => Err(self.err(e, "incomplete expression".into())),
        }
    }

    fn literal(&self, e: &IdedExpr, l: &LiteralValue) -> Result<Typed, WhenError> {
        Ok(match l {
            LiteralValue::Boolean(b) => (Node::Const(Val::Bool(**b)), Ty::Bool),
            LiteralValue::Int(i) => (Node::Const(Val::Int(**i)), Ty::Int),
            LiteralValue::String(s) => (Node::Const(Val::Str(s.to_string().into())), Ty::Str),
            LiteralValue::UInt(_) => {
                return Err(self.err(
                    e,
                    "unsigned ints are not supported; write an int (no `u`)".into(),
                ));
            }
            LiteralValue::Double(_) => {
                return Err(self.err(
                    e,
                    "doubles are not supported in conditions; use ints".into(),
                ));
            }
            LiteralValue::Bytes(_) => {
                return Err(self.err(e, "bytes are not supported in conditions".into()));
            }
            LiteralValue::Null => {
                return Err(self.err(
                    e,
                    "null is not a value any variable takes; test `has(…)`, `size(…)` or `!= ''` instead".into(),
                ));
            }
        })
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Result<Typed, WhenError> {
        if let Some((_, slot, ty)) = self.locals.iter().rev().find(|(n, _, _)| n == name) {
            return Ok((Node::Local(*slot), ty.clone()));
        }
        match name {
            "now" => {
                self.reads_now = true;
                Ok((Node::Var(Var::Now), Ty::Time))
            }
            "roles" if self.scope == Scope::Rule => Ok((Node::Var(Var::Roles), Ty::List(Box::new(Ty::Str)))),
            "roles" | "request" if self.scope == Scope::Role => Err(self.err(
                e,
                format!("`{name}` is not known when roles are granted (once per connection); a role condition reads `cert` and `now`"),
            )),
            "cert" | "request" => Err(self.err(
                e,
                format!("`{name}` is an object: name one of its fields, such as {}", match name {
                    "cert" => "cert.cn",
                    _ => "request.path",
                }),
            )),
            _ => Err(self.err(
                e,
                format!("unknown variable `{name}`: use cert, request, roles or now"),
            )),
        }
    }

    fn select(
        &mut self,
        e: &IdedExpr,
        operand: &IdedExpr,
        field: &str,
        test: bool,
    ) -> Result<Typed, WhenError> {
        if let Expr::Ident(root) = &operand.expr
            && (root == "cert" || root == "request")
            && !self.locals.iter().any(|(n, _, _)| n == root)
        {
            if root == "request" && self.scope == Scope::Role {
                return Err(self.err(operand, "`request` is not known when roles are granted (once per connection); a role condition reads `cert` and `now`".into()));
            }
            let fields = if root == "cert" {
                CERT_FIELDS
            } else {
                REQUEST_FIELDS
            };
            let Some((_, var)) = fields.iter().find(|(n, _)| *n == field) else {
                let names: Vec<_> = fields.iter().map(|(n, _)| *n).collect();
                return Err(self.err(
                    operand,
                    format!(
                        "`{root}` has no field `{field}`; it has {}",
                        names.join(", ")
                    ),
                ));
            };
            if root == "cert" {
                self.reads_cert = true;
            }
            match *var {
                Var::Path => self.reads_path = true,
                Var::Segments => self.reads_segments = true,
                Var::Query => self.reads_query = true,
                _ => {}
            }
            if test && *var == Var::Cn {
                return Ok((Node::HasCn, Ty::Bool));
            }
            if test {
                return Err(self.err(e, format!("`{root}.{field}` is always present: test its value instead (for example `{root}.{field} != ''` or `size({root}.{field}) > 0`)")));
            }
            return Ok((Node::Var(*var), var.ty()));
        }
        let (map, ty) = self.expr(operand)?;
        if ty != Ty::Map {
            return Err(self.err(e, format!("a {ty} has no fields")));
        }
        let key = Node::Const(Val::Str(field.to_owned().into()));
        Ok(match test {
            true => (Node::InMap(bx(key), bx(map)), Ty::Bool),
            false => (Node::Lookup(bx(map), bx(key)), Ty::Str),
        })
    }

    fn comprehension(&mut self, e: &IdedExpr, c: &ComprehensionExpr) -> Result<Typed, WhenError> {
        if c.iter_var2.is_some() {
            return Err(self.err(e, "two-variable comprehensions are not supported".into()));
        }
        if self.nested >= MAX_NESTED_MACROS {
            return Err(self.err(
                e,
                format!("macros nest at most {MAX_NESTED_MACROS} deep in a condition"),
            ));
        }
        let (range, range_ty) = self.expr(&c.iter_range)?;
        let Ty::List(item_ty) = range_ty else {
            return Err(self.err(
                &c.iter_range,
                format!("all, exists and exists_one range over a list, this is a {range_ty}"),
            ));
        };
        // map and filter start from an empty list.
        if matches!(c.accu_init.expr, Expr::List(_)) {
            return Err(self.err(e, "map and filter are not supported in conditions (they build lists); use all, exists or exists_one".into()));
        }
        let (init, accu_ty) = self.expr(&c.accu_init)?;
        // Slots by depth: siblings reuse them, so two levels need four.
        let item = 2 * self.nested;
        let accu = item + 1;
        self.slots = self.slots.max(accu + 1);
        self.nested += 1;
        self.locals.push((c.iter_var.clone(), item, *item_ty));
        self.locals
            .push((c.accu_var.clone(), accu, accu_ty.clone()));
        let cond = self.expect(&c.loop_cond, &Ty::Bool, "the loop condition");
        let step = self.expect(&c.loop_step, &accu_ty, "the step");
        let result = self.expr(&c.result);
        self.locals.truncate(self.locals.len() - 2);
        self.nested -= 1;
        let (result, ty) = result?;
        Ok((
            Node::Loop(Box::new(Loop {
                range,
                item,
                accu,
                init,
                cond: cond?,
                step: step?,
                result,
            })),
            ty,
        ))
    }

    fn call(&mut self, e: &IdedExpr, call: &CallExpr) -> Result<Typed, WhenError> {
        let name = call.func_name.as_str();
        let args = &call.args;
        // Receiver-style calls take the receiver as their first operand.
        let mut all: Vec<&IdedExpr> = Vec::with_capacity(args.len() + 1);
        all.extend(call.target.as_deref());
        all.extend(args.iter());
        let arity = |n: usize| -> Result<(), WhenError> {
            if all.len() != n {
                return Err(self.err(
                    e,
                    format!(
                        "`{}` takes {} argument{}",
                        display_name(name),
                        n - usize::from(call.target.is_some()),
                        if n == 2 { "" } else { "s" }
                    ),
                ));
            }
            Ok(())
        };
        match name {
            operators::LOGICAL_AND | operators::LOGICAL_OR => {
                arity(2)?;
                let a = self.expect(all[0], &Ty::Bool, "each side of && and ||")?;
                let b = self.expect(all[1], &Ty::Bool, "each side of && and ||")?;
                Ok((
                    if name == operators::LOGICAL_AND {
                        Node::And(bx(a), bx(b))
                    } else {
                        Node::Or(bx(a), bx(b))
                    },
                    Ty::Bool,
                ))
            }
            operators::LOGICAL_NOT => {
                arity(1)?;
                Ok((
                    Node::Not(bx(self.expect(all[0], &Ty::Bool, "the operand of !")?)),
                    Ty::Bool,
                ))
            }
            operators::NOT_STRICTLY_FALSE => {
                arity(1)?;
                Ok((
                    Node::NotStrictlyFalse(bx(self.expect(
                        all[0],
                        &Ty::Bool,
                        "a loop condition",
                    )?)),
                    Ty::Bool,
                ))
            }
            operators::NEGATE => {
                arity(1)?;
                let (n, ty) = self.expr(all[0])?;
                match ty {
                    Ty::Int => Ok((Node::Neg(bx(n)), Ty::Int)),
                    Ty::Dur => Ok((Node::NegDur(bx(n)), Ty::Dur)),
                    _ => Err(self.err(e, format!("cannot negate a {ty}"))),
                }
            }
            operators::CONDITIONAL => {
                arity(3)?;
                let c = self.expect(all[0], &Ty::Bool, "the condition of ?:")?;
                let (a, ty) = self.expr(all[1])?;
                let b = self.expect(all[2], &ty, "both branches of ?:")?;
                Ok((Node::Cond(Box::new([c, a, b])), ty))
            }
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => {
                arity(2)?;
                let op = match name {
                    operators::EQUALS => Cmp::Eq,
                    operators::NOT_EQUALS => Cmp::Ne,
                    operators::LESS => Cmp::Lt,
                    operators::LESS_EQUALS => Cmp::Le,
                    operators::GREATER => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                let (a, ty) = self.expr(all[0])?;
                let (b, ty_b) = self.expr(all[1])?;
                if ty != ty_b {
                    return Err(self.err(e, format!("cannot compare a {ty} with a {ty_b}")));
                }
                let ordered = matches!(ty, Ty::Int | Ty::Str | Ty::Time | Ty::Dur);
                if ty == Ty::Map || (!ordered && !matches!(op, Cmp::Eq | Cmp::Ne)) {
                    return Err(self.err(
                        e,
                        format!("a {ty} cannot be compared with {}", display_name(name)),
                    ));
                }
                Ok((Node::Cmp(op, bx(a), bx(b)), Ty::Bool))
            }
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO => {
                arity(2)?;
                let (a, ta) = self.expr(all[0])?;
                let (b, tb) = self.expr(all[1])?;
                let (op, ty) = match (name, &ta, &tb) {
                    (operators::ADD, Ty::Int, Ty::Int) => (Arith::Add, Ty::Int),
                    (operators::SUBSTRACT, Ty::Int, Ty::Int) => (Arith::Sub, Ty::Int),
                    (operators::MULTIPLY, Ty::Int, Ty::Int) => (Arith::Mul, Ty::Int),
                    (operators::DIVIDE, Ty::Int, Ty::Int) => (Arith::Div, Ty::Int),
                    (operators::MODULO, Ty::Int, Ty::Int) => (Arith::Rem, Ty::Int),
                    (operators::ADD, Ty::Str, Ty::Str) => (Arith::Concat, Ty::Str),
                    (operators::ADD, Ty::Time, Ty::Dur) => (Arith::TimePlusDur, Ty::Time),
                    (operators::ADD, Ty::Dur, Ty::Time) => {
                        return Ok((Node::Arith(Arith::TimePlusDur, bx(b), bx(a)), Ty::Time));
                    }
                    (operators::SUBSTRACT, Ty::Time, Ty::Dur) => (Arith::TimeMinusDur, Ty::Time),
                    (operators::SUBSTRACT, Ty::Time, Ty::Time) => (Arith::TimeMinusTime, Ty::Dur),
                    (operators::ADD, Ty::Dur, Ty::Dur) => (Arith::DurPlusDur, Ty::Dur),
                    (operators::SUBSTRACT, Ty::Dur, Ty::Dur) => (Arith::DurMinusDur, Ty::Dur),
                    _ => {
                        return Err(self.err(
                            e,
                            format!("no operator {} for a {ta} and a {tb}", display_name(name)),
                        ));
                    }
                };
                Ok((Node::Arith(op, bx(a), bx(b)), ty))
            }
            operators::IN => {
                arity(2)?;
                // `'admin' in roles`: the name is checked now and tested as one bit.
                if let (Expr::Literal(LiteralValue::String(role)), Expr::Ident(var)) =
                    (&all[0].expr, &all[1].expr)
                    && var == "roles"
                    && self.scope == Scope::Rule
                    && !self.locals.iter().any(|(n, _, _)| n == "roles")
                {
                    let Some(i) = self.roles.iter().position(|r| r.as_str() == &**role) else {
                        let known = if self.roles.is_empty() {
                            "none".into()
                        } else {
                            self.roles.join(", ")
                        };
                        return Err(self.err(
                            all[0],
                            format!("no role {:?} is defined (roles defined: {known})", &**role),
                        ));
                    };
                    return Ok((Node::HasRole(RoleId::new(i)), Ty::Bool));
                }
                let (a, ta) = self.expr(all[0])?;
                let (b, tb) = self.expr(all[1])?;
                match &tb {
                    Ty::List(el) if **el == ta => Ok((Node::InList(bx(a), bx(b)), Ty::Bool)),
                    Ty::Map if ta == Ty::Str => Ok((Node::InMap(bx(a), bx(b)), Ty::Bool)),
                    _ => Err(self.err(e, format!("cannot test whether a {ta} is in a {tb}"))),
                }
            }
            operators::INDEX => {
                arity(2)?;
                let (a, ta) = self.expr(all[0])?;
                let (b, tb) = self.expr(all[1])?;
                match (&ta, &tb) {
                    (Ty::List(el), Ty::Int) => Ok((Node::Index(bx(a), bx(b)), (**el).clone())),
                    (Ty::Map, Ty::Str) => Ok((Node::Lookup(bx(a), bx(b)), Ty::Str)),
                    _ => Err(self.err(e, format!("cannot index a {ta} with a {tb}"))),
                }
            }
            "size" => {
                arity(1)?;
                let (a, ta) = self.expr(all[0])?;
                match ta {
                    Ty::Str | Ty::List(_) => Ok((Node::Size(bx(a)), Ty::Int)),
                    _ => Err(self.err(
                        e,
                        format!("size() takes a string or a list, this is a {ta}"),
                    )),
                }
            }
            "startsWith" | "endsWith" | "contains" => {
                arity(2)?;
                if call.target.is_none() {
                    return Err(self.err(e, format!("write `s.{name}(x)`")));
                }
                let a = self.expect(all[0], &Ty::Str, &format!("the receiver of {name}"))?;
                let b = self.expect(all[1], &Ty::Str, &format!("the argument of {name}"))?;
                let op = match name {
                    "startsWith" => StrTest::StartsWith,
                    "endsWith" => StrTest::EndsWith,
                    _ => StrTest::Contains,
                };
                Ok((Node::StrTest(op, bx(a), bx(b)), Ty::Bool))
            }
            "matches" => {
                arity(2)?;
                let a = self.expect(all[0], &Ty::Str, "the string matches() tests")?;
                let pattern = self.literal_str(all[1], "the regular expression of matches()")?;
                let re = regex::RegexBuilder::new(&pattern)
                    .size_limit(1 << 16)
                    .build()
                    .map_err(|err| {
                        self.err(all[1], format!("invalid regular expression: {err}"))
                    })?;
                Ok((Node::Matches(bx(a), re), Ty::Bool))
            }
            "lowerAscii" | "upperAscii" => {
                arity(1)?;
                let a = self.expect(all[0], &Ty::Str, &format!("the receiver of {name}"))?;
                Ok((
                    if name == "lowerAscii" {
                        Node::Lower(bx(a))
                    } else {
                        Node::Upper(bx(a))
                    },
                    Ty::Str,
                ))
            }
            "timestamp" => {
                arity(1)?;
                let s = self.literal_str(all[0], "timestamp()'s argument")?;
                let t: Timestamp = s.parse().map_err(|err| {
                    self.err(
                        all[0],
                        format!("not an RFC 3339 timestamp such as '2027-01-31T09:00:00Z': {err}"),
                    )
                })?;
                Ok((Node::Const(Val::Time(t)), Ty::Time))
            }
            "duration" => {
                arity(1)?;
                let s = self.literal_str(all[0], "duration()'s argument")?;
                let d = parse_duration(&s).ok_or_else(|| self.err(all[0], format!("{s:?} is not a duration: write a number and a unit, h, m, s or ms (90 days is '2160h')")))?;
                Ok((Node::Const(Val::Dur(d)), Ty::Dur))
            }
            "int" => {
                arity(1)?;
                let (a, ta) = self.expr(all[0])?;
                match ta {
                    Ty::Int => Ok((a, Ty::Int)),
                    Ty::Str | Ty::Time => Ok((Node::IntOf(bx(a)), Ty::Int)),
                    _ => Err(self.err(
                        e,
                        format!("int() takes a string or a timestamp, this is a {ta}"),
                    )),
                }
            }
            "string" => {
                arity(1)?;
                let (a, ta) = self.expr(all[0])?;
                match ta {
                    Ty::Str => Ok((a, Ty::Str)),
                    Ty::Int | Ty::Time | Ty::Dur => Ok((Node::StringOf(bx(a)), Ty::Str)),
                    _ => Err(self.err(
                        e,
                        format!("string() takes an int, a timestamp or a duration, this is a {ta}"),
                    )),
                }
            }
            _ => {
                if let Some((_, part)) = PARTS.iter().find(|(n, _)| *n == name) {
                    if call.target.is_none() || all.len() > 2 {
                        return Err(self.err(
                            e,
                            format!("write `t.{name}()` or `t.{name}('Europe/Berlin')`"),
                        ));
                    }
                    let t = self.expect(all[0], &Ty::Time, &format!("the receiver of {name}"))?;
                    let tz = match all.get(1) {
                        None => TimeZone::UTC,
                        Some(arg) => {
                            let name = self.literal_str(arg, "the time zone")?;
                            time_zone(&name).ok_or_else(|| self.err(arg, format!("unknown time zone {name:?}: use an IANA name such as 'Europe/Berlin', 'UTC', or an offset such as '+01:00'")))?
                        }
                    };
                    return Ok((Node::Part(*part, bx(t), tz), Ty::Int));
                }
                if matches!(name, "map" | "filter" | "transformList" | "transformMap") {
                    return Err(self.err(e, format!("{name} is not supported in conditions (it builds a list); use all, exists or exists_one")));
                }
                Err(self.err(e, format!("unknown function `{}`", display_name(name))))
            }
        }
    }

    fn literal_str(&self, e: &IdedExpr, what: &str) -> Result<String, WhenError> {
        match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => Ok(s.to_string()),
            _ => Err(self.err(
                e,
                format!("{what} must be a string literal, so it is checked when the policy loads"),
            )),
        }
    }
}

/// An operator's name as written: `_+_` is `+`.
fn display_name(name: &str) -> &str {
    match name {
        operators::IN => "in",
        operators::INDEX => "[]",
        operators::NEGATE => "-",
        operators::CONDITIONAL => "?:",
        _ => name.trim_matches('_').trim_start_matches('@'),
    }
}

/// A CEL duration: a sequence of decimal numbers, each with a unit (`h`, `m`, `s`, `ms`,
/// `us`, `ns`), optionally signed: `2160h`, `1h30m`, `-90s`, `1.5s`. jiff's "friendly"
/// duration format reads the same spellings.
fn parse_duration(s: &str) -> Option<SignedDuration> {
    let ok = !s.is_empty()
        && s.trim_start_matches(['-', '+'])
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'h' | b'm' | b's' | b'u' | b'n'));
    if !ok {
        return None;
    }
    s.parse().ok()
}

/// An IANA zone (from the tz database built into the binary), `UTC`, or `±HH:MM`.
fn time_zone(name: &str) -> Option<TimeZone> {
    if let Some(rest) = name.strip_prefix(['+', '-']) {
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        let secs = (h * 3600 + m * 60) * if name.starts_with('-') { -1 } else { 1 };
        return jiff::tz::Offset::from_seconds(secs)
            .ok()
            .map(TimeZone::fixed);
    }
    TimeZone::get(name).ok()
}
