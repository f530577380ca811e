//! Inventory joins. A `violation` body that scans `data.inventory` and compares each object
//! with the review (a unique host, a unique selector) costs one scan of the inventory per
//! review, which makes a run quadratic in its objects. Such a body is split in two:
//!
//! - the literals that read only the inventory (the scan and what is computed from each object)
//!   become an index rule, `__inventory_join_N`, whose elements are `[key, bindings]`; the
//!   engine evaluates it once per inventory and stores it, grouped by key, under
//!   `data.__inventory_join.iN`;
//! - the body looks the review's side of the first equality up in that index and takes the
//!   bindings the rest of the body uses from each hit.
//!
//! The rewritten module keeps every original line where it was (literals moved to the index
//! become `true`), and the index rules are appended after it. Any doubt leaves the module as it
//! is: imports other than keywords, `with`, `some`, `every`, `else`, more than one read of the
//! inventory in a body, or builtins whose answer changes between calls.

use std::collections::BTreeSet;

use regorus::unstable::{
    BoolOp, Expr, Literal, LiteralStmt, Parser, Query, Ref, Rule, RuleHead, Source,
};

/// The name every index rule starts with, and the data path the indexes are stored under.
pub const INDEX_RULE: &str = "__inventory_join_";
pub const INDEX_DATA: &str = "__inventory_join";

/// Builtins whose answer is not a function of their arguments: a literal calling one cannot be
/// evaluated once for all reviews.
const UNSTABLE_BUILTINS: &[&str] = &[
    "time.now_ns",
    "rand.",
    "http.send",
    "external_data",
    "uuid.",
    "opa.runtime",
    "print(",
    "trace(",
    "net.lookup",
];

/// A module with its inventory scans indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The module to compile in place of the original.
    pub text: String,
    /// How many index rules it appends (`__inventory_join_0` …).
    pub indexes: usize,
}

/// What an expression or literal mentions.
#[derive(Debug, Default, Clone)]
struct Facts {
    /// Variables, without `_`, `input`, `data` and the names of called functions.
    vars: BTreeSet<String>,
    /// Called functions and builtins, by their first name (`regex` for `regex.match`).
    calls: BTreeSet<String>,
    /// Reads `input`, or a part of `data` other than `data.inventory`.
    impure: bool,
    /// Reads `data.inventory`.
    inventory: bool,
    /// Has a `_`.
    wildcard: bool,
    /// Variables it may bind: a side of `=` or `:=`, or an index of a reference.
    bindable: BTreeSet<String>,
}

impl Facts {
    fn of_expr(e: &Expr) -> Facts {
        let mut f = Facts::default();
        f.expr(e);
        f
    }

    fn of_stmt(s: &LiteralStmt) -> Facts {
        let mut f = Facts::default();
        f.stmt(s);
        f
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.vars.iter().chain(self.calls.iter())
    }

    fn var(&mut self, name: &str) {
        match name {
            "_" => self.wildcard = true,
            "input" | "data" => self.impure = true,
            _ => {
                self.vars.insert(name.to_string());
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { value, .. } => {
                if let Ok(name) = value.as_string() {
                    self.var(name);
                }
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| self.expr(i));
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k);
                    self.expr(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                match root_name(fcn) {
                    Some(name) if name != "input" && name != "data" => {
                        self.calls.insert(name);
                    }
                    _ => self.impure = true,
                }
                params.iter().for_each(|p| self.expr(p));
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::RefDot { refr, field, .. } => {
                if is_var(refr, "data") {
                    match field.1.as_string() {
                        Ok(name) if name.as_ref() == "inventory" => self.inventory = true,
                        _ => self.impure = true,
                    }
                } else {
                    self.expr(refr);
                }
            }
            Expr::RefBrack { refr, index, .. } => {
                if is_var(refr, "data") {
                    match index.as_ref() {
                        Expr::String { value, .. }
                            if value.as_string().is_ok_and(|s| s.as_ref() == "inventory") =>
                        {
                            self.inventory = true
                        }
                        _ => self.impure = true,
                    }
                } else {
                    if let Some(name) = var_name(index) {
                        self.bindable.insert(name);
                    }
                    self.expr(refr);
                    self.expr(index);
                }
            }
            Expr::AssignExpr { lhs, rhs, .. } => {
                self.bindable.extend(var_name(lhs));
                self.bindable.extend(var_name(rhs));
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => self.membership(key.as_ref(), value, collection),
            #[allow(unreachable_patterns)]
            _ => self.impure = true,
        }
    }

    /// `key, value in collection`, as an expression or after `some`.
    fn membership(&mut self, key: Option<&Ref<Expr>>, value: &Expr, collection: &Expr) {
        if let Some(k) = key {
            self.expr(k);
        }
        self.expr(value);
        self.expr(collection);
    }

    fn query(&mut self, q: &Query) {
        q.stmts.iter().for_each(|s| self.stmt(s));
    }

    fn stmt(&mut self, s: &LiteralStmt) {
        for w in &s.with_mods {
            self.impure = true;
            self.expr(&w.r#as);
        }
        match &s.literal {
            Literal::SomeVars { vars, .. } => vars.iter().for_each(|v| self.var(v.text())),
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => self.membership(key.as_ref(), value, collection),
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                if let Some(k) = key {
                    self.var(k.text());
                }
                self.var(value.text());
                self.expr(domain);
                self.query(query);
            }
        }
    }

    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        self.expr(refr);
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        self.expr(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func {
                        refr, args, assign, ..
                    } => {
                        self.expr(refr);
                        args.iter().for_each(|a| self.expr(a));
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                }
                for body in bodies {
                    if let Some(a) = &body.assign {
                        self.expr(&a.value);
                    }
                    self.query(&body.query);
                }
            }
            Rule::Default {
                refr, args, value, ..
            } => {
                self.expr(refr);
                args.iter().for_each(|a| self.expr(a));
                self.expr(value);
            }
        }
    }
}

fn var_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.to_string()),
        _ => None,
    }
}

fn is_var(e: &Expr, name: &str) -> bool {
    var_name(e).is_some_and(|v| v == name)
}

/// The variable a reference starts from: `regex` for `regex.match`, `f` for `f`.
fn root_name(e: &Expr) -> Option<String> {
    match e {
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => root_name(refr),
        _ => var_name(e),
    }
}

/// The name a rule defines (`violation`, `identical`).
fn rule_name(rule: &Rule) -> Option<String> {
    match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => root_name(refr),
        },
        Rule::Default { refr, .. } => root_name(refr),
    }
}

/// Rewrites the main module of a template so that its inventory scans are index lookups, or
/// `None` when no body can be rewritten safely.
pub fn rewrite(main: &str, v1: bool) -> Option<Joined> {
    if !main.contains("data.inventory")
        || main.contains("__ij")
        || main.contains(INDEX_DATA)
        || UNSTABLE_BUILTINS.iter().any(|b| main.contains(b))
    {
        return None;
    }
    let source = Source::from_contents("main.rego".to_string(), main.to_string()).ok()?;
    let mut parser = Parser::new(&source).ok()?;
    if v1 {
        parser.enable_rego_v1().ok()?;
    }
    let module = parser.parse().ok()?;
    for import in &module.imports {
        let path = import.refr.span().text();
        if !(path == "rego.v1" || path.starts_with("future.keywords")) || import.r#as.is_some() {
            return None;
        }
    }
    let v1 = v1 || module.rego_v1;

    // Rules that depend on the review: those reading `input` (or data other than the
    // inventory), and those calling or naming one of them.
    let rules: Vec<(String, Facts)> = module
        .policy
        .iter()
        .filter_map(|r| {
            let mut f = Facts::default();
            f.rule(r);
            Some((rule_name(r)?, f))
        })
        .collect();
    let rule_names: BTreeSet<String> = rules.iter().map(|(n, _)| n.clone()).collect();
    let mut tainted_rules: BTreeSet<String> = BTreeSet::new();
    loop {
        let before = tainted_rules.len();
        for (name, facts) in &rules {
            if facts.impure || facts.names().any(|n| tainted_rules.contains(n)) {
                tainted_rules.insert(name.clone());
            }
        }
        if tainted_rules.len() == before {
            break;
        }
    }

    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut appended = String::new();
    let mut indexes = 0;
    for rule in &module.policy {
        if rule_name(rule).as_deref() != Some("violation") {
            continue;
        }
        let Some(plan) = plan(rule, &rule_names, &tainted_rules) else {
            continue;
        };
        let n = indexes;
        indexes += 1;
        let entry = plan
            .exported
            .iter()
            .map(|v| format!("{v:?}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let key = plan.key.as_deref().unwrap_or("true");
        let (head, open) = if v1 {
            (
                format!("{INDEX_RULE}{n} contains [__ij_key, __ij_entry]"),
                " if {",
            )
        } else {
            (format!("{INDEX_RULE}{n}[[__ij_key, __ij_entry]]"), " {")
        };
        appended.push_str(&format!("\n{head}{open}\n"));
        for literal in &plan.index_literals {
            appended.push_str(&format!("  {literal}\n"));
        }
        appended.push_str(&format!(
            "  __ij_key := {key}\n  __ij_entry := {{{entry}}}\n}}\n"
        ));
        let probe = plan.probe.as_deref().unwrap_or("true");
        let mut lookup = format!("__ij_{n} := data.{INDEX_DATA}.i{n}[{probe}][_]");
        for v in &plan.exported {
            lookup.push_str(&format!("; {v} = __ij_{n}.{v}"));
        }
        for (start, end, at_lookup) in plan.replaced {
            let old = &main[start..end];
            let text = if at_lookup {
                lookup.clone()
            } else {
                "true".to_string()
            };
            let newlines = old.matches('\n').count();
            edits.push((start, end, format!("{text}{}", "\n".repeat(newlines))));
        }
    }
    if indexes == 0 {
        return None;
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut text = main.to_string();
    for (start, end, replacement) in edits {
        text.replace_range(start..end, &replacement);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&appended);
    Some(Joined { text, indexes })
}

/// How one `violation` body is split.
struct Plan {
    /// The scan and the literals that read only the inventory, as written.
    index_literals: Vec<String>,
    /// The inventory side of the join equality, or none (every hit matches).
    key: Option<String>,
    /// The review side of the join equality.
    probe: Option<String>,
    /// Variables of the index side the rest of the body or the head uses.
    exported: Vec<String>,
    /// Byte ranges of the literals that leave the body; `true` for the one the lookup replaces.
    replaced: Vec<(usize, usize, bool)>,
}

fn plan(
    rule: &Rule,
    rule_names: &BTreeSet<String>,
    tainted_rules: &BTreeSet<String>,
) -> Option<Plan> {
    let Rule::Spec { head, bodies, .. } = rule else {
        return None;
    };
    let RuleHead::Set {
        key: Some(head_key),
        ..
    } = head
    else {
        return None;
    };
    let [body] = bodies.as_slice() else {
        return None;
    };
    if body.is_else || body.assign.is_some() {
        return None;
    }
    let stmts = &body.query.stmts;
    if stmts.iter().any(|s| {
        !s.with_mods.is_empty()
            || !matches!(s.literal, Literal::Expr { .. } | Literal::NotExpr { .. })
    }) {
        return None;
    }
    let facts: Vec<Facts> = stmts.iter().map(Facts::of_stmt).collect();
    let scans: Vec<usize> = (0..stmts.len()).filter(|&i| facts[i].inventory).collect();
    let [scan] = scans.as_slice() else {
        return None;
    };
    let scan = *scan;
    // The scan: `x := data.inventory…[var]…` (or `=`), reading nothing else.
    let Literal::Expr { expr, .. } = &stmts[scan].literal else {
        return None;
    };
    let Expr::AssignExpr { lhs, rhs, .. } = expr.as_ref() else {
        return None;
    };
    let rhs_facts = Facts::of_expr(rhs);
    if !matches!(lhs.as_ref(), Expr::Var { .. })
        || facts[scan].impure
        || rhs_facts.vars.is_empty() && !rhs_facts.wildcard
    {
        return None;
    }
    let scan_vars = &facts[scan].vars;

    // Which literals depend on the review, directly or through a variable one of them binds.
    let mut tainted = vec![false; stmts.len()];
    let mut tainted_vars: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut changed = false;
        for i in (0..stmts.len()).filter(|&i| i != scan) {
            if !tainted[i]
                && (facts[i].impure
                    || facts[i].names().any(|n| tainted_rules.contains(n))
                    || facts[i].vars.iter().any(|v| tainted_vars.contains(v)))
            {
                tainted[i] = true;
                changed = true;
            }
        }
        let assigned: BTreeSet<String> = (0..stmts.len())
            .filter(|&i| i != scan && !tainted[i])
            .filter_map(|i| assigned_var(&stmts[i]))
            .collect();
        for i in (0..stmts.len()).filter(|&i| tainted[i]) {
            if matches!(stmts[i].literal, Literal::NotExpr { .. }) {
                continue;
            }
            for v in &facts[i].vars {
                if !scan_vars.contains(v) && !assigned.contains(v) && !rule_names.contains(v) {
                    changed |= tainted_vars.insert(v.clone());
                }
            }
        }
        if !changed {
            break;
        }
    }
    // A scan variable another review-side literal may bind makes the scan a lookup by the
    // review: nothing to index.
    if review_side_bindable(stmts, &facts, &tainted).any(|v| scan_vars.contains(v)) {
        return None;
    }
    let index_side: Vec<usize> = (0..stmts.len())
        .filter(|&i| i != scan && !tainted[i])
        .collect();
    let review_side: Vec<usize> = (0..stmts.len()).filter(|&i| tainted[i]).collect();
    let mut data_vars: BTreeSet<String> = scan_vars.clone();
    for &i in &index_side {
        data_vars.extend(
            facts[i]
                .vars
                .iter()
                .filter(|v| !rule_names.contains(*v))
                .cloned(),
        );
    }

    // The join: the first `a == b` of the review side with `b` on the inventory side and `a`
    // free of it.
    let inventory_side = |f: &Facts| {
        !f.impure
            && !f.inventory
            && !f.vars.is_empty()
            && f.vars.iter().all(|v| data_vars.contains(v))
            && !f.names().any(|n| tainted_rules.contains(n))
    };
    let review_only = |f: &Facts| !f.inventory && f.vars.iter().all(|v| !data_vars.contains(v));
    let join = review_side.iter().find_map(|&i| {
        let Literal::Expr { expr, .. } = &stmts[i].literal else {
            return None;
        };
        let Expr::BoolExpr {
            op: BoolOp::Eq,
            lhs,
            rhs,
            ..
        } = expr.as_ref()
        else {
            return None;
        };
        [(lhs, rhs), (rhs, lhs)].into_iter().find_map(|(a, b)| {
            let (fa, fb) = (Facts::of_expr(a), Facts::of_expr(b));
            let a_text = a.span().text();
            (inventory_side(&fb) && review_only(&fa) && !a_text.contains('\n'))
                .then(|| (i, a_text.to_string(), b.span().text().to_string(), fa))
        })
    });
    if join.is_none() && index_side.is_empty() {
        return None;
    }

    let mut used: BTreeSet<String> = Facts::of_expr(head_key).vars;
    for &i in &review_side {
        if join.as_ref().is_some_and(|j| j.0 == i) {
            continue;
        }
        used.extend(facts[i].vars.iter().cloned());
    }
    let exported: Vec<String> = data_vars.intersection(&used).cloned().collect();

    // The lookup goes where the scan was when the review side of the join is bound before the
    // scan; else where the join was.
    let bound_before_scan: BTreeSet<&String> = review_side
        .iter()
        .filter(|&&i| i < scan)
        .flat_map(|&i| facts[i].vars.iter())
        .collect();
    let lookup_at = match &join {
        Some((j, _, _, fa)) if !fa.vars.iter().all(|v| bound_before_scan.contains(v)) => *j,
        _ => scan,
    };
    let span = |i: usize| (stmts[i].span.start as usize, stmts[i].span.end as usize);
    let mut replaced = vec![{
        let (s, e) = span(scan);
        (s, e, lookup_at == scan)
    }];
    for &i in &index_side {
        let (s, e) = span(i);
        replaced.push((s, e, false));
    }
    if let Some((j, ..)) = &join {
        let (s, e) = span(*j);
        replaced.push((s, e, lookup_at == *j));
    }
    let mut index_literals = vec![stmts[scan].span.text().to_string()];
    index_literals.extend(index_side.iter().map(|&i| stmts[i].span.text().to_string()));
    Some(Plan {
        index_literals,
        key: join.as_ref().map(|j| j.2.clone()),
        probe: join.map(|j| j.1),
        exported,
        replaced,
    })
}

fn review_side_bindable<'a>(
    stmts: &'a [LiteralStmt],
    facts: &'a [Facts],
    tainted: &'a [bool],
) -> impl Iterator<Item = &'a String> {
    (0..stmts.len())
        .filter(|&i| tainted[i] && !matches!(stmts[i].literal, Literal::NotExpr { .. }))
        .flat_map(|i| facts[i].bindable.iter())
}

/// The variable a literal `v := …` or `v = …` assigns.
fn assigned_var(stmt: &LiteralStmt) -> Option<String> {
    let Literal::Expr { expr, .. } = &stmt.literal else {
        return None;
    };
    let Expr::AssignExpr { lhs, .. } = expr.as_ref() else {
        return None;
    };
    var_name(lhs)
}

#[cfg(test)]
mod tests;
