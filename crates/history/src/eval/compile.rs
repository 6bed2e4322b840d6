//! Compilation of a parsed JMESPath expression into the evaluator's
//! [`Node`] tree.
//!
//! Compiling resolves what can be resolved once: function names and their
//! arity (so that a misspelt metric fails when it is loaded), literals as
//! JSON, and `length()` of a projection, which becomes a count that needs
//! no array.

use jmespath::ast::{Ast, Comparator};
use serde_json::Value;

use super::functions::Func;
use super::values::Hint;

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Identity,
    Field(String, Hint),
    Index(i32),
    Slice {
        start: Option<i32>,
        stop: Option<i32>,
        step: i32,
    },
    Literal(Value),
    Subexpr(Box<Node>, Box<Node>),
    Projection(Box<Node>, Box<Node>),
    ObjectValues(Box<Node>),
    Flatten(Box<Node>),
    Condition(Box<Node>, Box<Node>),
    Comparison(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    MultiList(Vec<Node>),
    MultiHash(Vec<(String, Node)>),
    Function(Func, Vec<Node>),
    Expref(Box<Node>),
    /// `length()` of a projection, counted without building the array.
    CountProjection(Box<Node>, Box<Node>),
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

/// Compiles a parsed expression.
pub(crate) fn compile(ast: &Ast) -> Result<Node, String> {
    let b = |a: &Ast| compile(a).map(Box::new);
    Ok(match ast {
        Ast::Identity { .. } => Node::Identity,
        Ast::Field { name, .. } => Node::Field(name.clone(), Hint::default()),
        Ast::Index { idx, .. } => Node::Index(*idx),
        Ast::Slice { start, stop, step, .. } => Node::Slice { start: *start, stop: *stop, step: *step },
        Ast::Literal { value, .. } => Node::Literal(variable_to_json(value)),
        Ast::Subexpr { lhs, rhs, .. } => Node::Subexpr(b(lhs)?, b(rhs)?),
        Ast::Projection { lhs, rhs, .. } => Node::Projection(b(lhs)?, b(rhs)?),
        Ast::ObjectValues { node, .. } => Node::ObjectValues(b(node)?),
        Ast::Flatten { node, .. } => Node::Flatten(b(node)?),
        Ast::Condition { predicate, then, .. } => Node::Condition(b(predicate)?, b(then)?),
        Ast::Comparison { comparator, lhs, rhs, .. } => {
            let cmp = match comparator {
                Comparator::Equal => Cmp::Eq,
                Comparator::NotEqual => Cmp::Ne,
                Comparator::LessThan => Cmp::Lt,
                Comparator::LessThanEqual => Cmp::Le,
                Comparator::GreaterThan => Cmp::Gt,
                Comparator::GreaterThanEqual => Cmp::Ge,
            };
            Node::Comparison(cmp, b(lhs)?, b(rhs)?)
        }
        Ast::And { lhs, rhs, .. } => Node::And(b(lhs)?, b(rhs)?),
        Ast::Or { lhs, rhs, .. } => Node::Or(b(lhs)?, b(rhs)?),
        Ast::Not { node, .. } => Node::Not(b(node)?),
        Ast::MultiList { elements, .. } => Node::MultiList(elements.iter().map(compile).collect::<Result<_, _>>()?),
        Ast::MultiHash { elements, .. } => Node::MultiHash(
            elements.iter().map(|kv| compile(&kv.value).map(|v| (kv.key.clone(), v))).collect::<Result<_, _>>()?,
        ),
        Ast::Expref { ast, .. } => Node::Expref(b(ast)?),
        Ast::Function { name, args, .. } => {
            let func = Func::from_name(name).ok_or_else(|| format!("unknown function `{name}`"))?;
            let (count, variadic) = func.arity();
            if args.len() < count || (!variadic && args.len() > count) {
                return Err(format!(
                    "{name}() takes {}{count} argument{}, {} given",
                    if variadic { "at least " } else { "" },
                    if count == 1 { "" } else { "s" },
                    args.len()
                ));
            }
            let args: Vec<Node> = args.iter().map(compile).collect::<Result<_, _>>()?;
            // Counting the elements of a filtered collection is what most
            // metrics do; it needs no array.
            if func == Func::Length
                && let [Node::Projection(lhs, rhs)] = args.as_slice()
            {
                return Ok(Node::CountProjection(lhs.clone(), rhs.clone()));
            }
            Node::Function(func, args)
        }
    })
}

/// Converts a literal of the parsed expression into JSON, keeping numbers
/// exactly as written.
fn variable_to_json(var: &jmespath::Variable) -> Value {
    use jmespath::Variable;
    match var {
        Variable::Null | Variable::Expref(_) => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => Value::Number(n.clone()),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Array(items) => Value::Array(items.iter().map(|v| variable_to_json(v)).collect()),
        Variable::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), variable_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_functions_and_arity_fail_at_compile_time() {
        let parse = |e: &str| compile(&jmespath::parse(e).unwrap());
        assert!(parse("nope(@)").is_err());
        assert!(parse("length(@, @)").is_err());
        assert!(parse("merge()").is_err());
        assert!(parse("merge(@, @, @)").is_ok());
    }
}
