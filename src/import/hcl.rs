//! Packer's HCL2 templates (`.pkr.hcl`): `variable` defaults, `locals`,
//! `source`, `data` and `build` blocks, every expression evaluated as far as
//! it is static (Packer documentation, "HCL Templates": blocks, `path.root`,
//! functions). A value that needs the environment or the build's run is kept
//! as the reason it cannot be known.

use std::collections::BTreeMap;
use std::path::Path;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::ObjectKey;
use hcl::{Block, Body, Expression, Map, Structure, Value};

use super::template::{
    Build, DATE, Field, Finding, Item, Template, UNIQUE, data_id, is_dynamic, runtime,
};

/// What the `env` function answers: the variable is read when Packer runs.
const ENV_ERROR: &str = "reads environment variable";

/// Reads an HCL2 template.
pub(super) fn parse(text: &str, template_dir: &Path) -> Result<Template, String> {
    let body: Body = hcl::parse(text).map_err(|err| err.to_string())?;
    let mut ctx = Context::new();
    declare_functions(&mut ctx);
    ctx.declare_var(
        "path",
        Value::from_iter([("root", Value::from(template_dir.display().to_string()))]),
    );
    let mut template = Template::default();
    ctx.declare_var("var", variables(&body));
    // A data source's id is a stand-in known from its labels alone, so
    // locals may name it (`source_ami = local.base` with `base = data...id`).
    let mut data = Map::new();
    for block in blocks(&body, "data") {
        let [kind, name] = labels::<2>(block);
        let by_kind = data
            .entry(kind.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(by_kind) = by_kind {
            by_kind.insert(
                name.clone(),
                Value::from_iter([("id", data_id(&kind, &name))]),
            );
        }
    }
    ctx.declare_var("data", Value::Object(data));
    ctx.declare_var("local", locals(&body, &ctx));
    for block in blocks(&body, "data") {
        let [kind, name] = labels::<2>(block);
        let item = item(block, &ctx, &kind, &format!("data.{kind}.{name}"));
        template.data.push(Item {
            reference: format!("{kind}.{name}"),
            ..item
        });
    }
    for block in blocks(&body, "source") {
        let [kind, name] = labels::<2>(block);
        let mut source_ctx = ctx.clone();
        source_ctx.declare_var(
            "source",
            Value::from_iter([("name", name.clone()), ("type", kind.clone())]),
        );
        let mut item = item(block, &source_ctx, &kind, &format!("source.{kind}.{name}"));
        for field in item.fields.values_mut() {
            if let Ok(value) = field {
                *field = super::json::expand(value);
            }
        }
        template.sources.push(Item {
            reference: format!("{kind}.{name}"),
            ..item
        });
    }
    for (i, block) in blocks(&body, "build").enumerate() {
        template.builds.push(build(block, &ctx, i));
    }
    for structure in body.iter() {
        let known = match structure {
            Structure::Attribute(_) => false,
            Structure::Block(block) => matches!(
                block.identifier(),
                "variable"
                    | "variables"
                    | "locals"
                    | "local"
                    | "data"
                    | "source"
                    | "build"
                    | "packer"
            ),
        };
        if !known {
            let name = match structure {
                Structure::Attribute(attr) => attr.key().to_owned(),
                Structure::Block(block) => block.identifier().to_owned(),
            };
            template.findings.push(Finding::unknown(name));
        }
    }
    Ok(template)
}

/// Each variable's default, where it is static (`variable` and `variables` blocks).
fn variables(body: &Body) -> Value {
    let empty = Context::new();
    let mut vars = Map::new();
    for block in blocks(body, "variable") {
        let [name] = labels::<1>(block);
        if let Some(value) =
            attribute(block.body(), "default").and_then(|e| e.evaluate(&empty).ok())
        {
            vars.insert(name, value);
        }
    }
    for block in blocks(body, "variables") {
        for attr in block.body().attributes() {
            if let Ok(value) = attr.expr().evaluate(&empty) {
                vars.insert(attr.key().to_owned(), value);
            }
        }
    }
    Value::Object(vars)
}

/// The locals that can be evaluated (locals may name each other: evaluated
/// until no more can be).
fn locals(body: &Body, ctx: &Context<'_>) -> Value {
    let mut pending: Vec<(String, Expression)> = Vec::new();
    for block in blocks(body, "locals") {
        for attr in block.body().attributes() {
            pending.push((attr.key().to_owned(), attr.expr().clone()));
        }
    }
    for block in blocks(body, "local") {
        let [name] = labels::<1>(block);
        if let Some(expr) = attribute(block.body(), "expression") {
            pending.push((name, expr.clone()));
        }
    }
    let mut locals = Map::new();
    loop {
        let mut scope = ctx.clone();
        scope.declare_var("local", Value::Object(locals.clone()));
        let before = pending.len();
        pending.retain(|(name, expr)| match expr.evaluate(&scope) {
            Ok(value) => {
                locals.insert(name.clone(), value);
                false
            }
            Err(_) => true,
        });
        if pending.is_empty() || pending.len() == before {
            return Value::Object(locals);
        }
    }
}

fn build(block: &Block, ctx: &Context<'_>, index: usize) -> Build {
    let body = block.body();
    let mut build = Build {
        description: attribute(body, "description")
            .and_then(|e| e.evaluate(ctx).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        ..Build::default()
    };
    let sources = attribute(body, "sources").and_then(|e| e.evaluate(ctx).ok());
    if let Some(Value::Array(sources)) = sources {
        build.sources.extend(
            sources
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim_start_matches("source.").to_owned()),
        );
    }
    for source in blocks(body, "source") {
        let [reference] = labels::<1>(source);
        let reference = reference.trim_start_matches("source.").to_owned();
        let overrides = item(source, ctx, "", "").fields;
        build.sources.push(reference.clone());
        build.overrides.insert(reference, overrides);
    }
    let path = format!("build[{index}]");
    let mut provisioners = 0;
    let mut post_processors = 0;
    for inner in body.blocks() {
        let [kind] = labels::<1>(inner);
        match inner.identifier() {
            "provisioner" => {
                let at = format!("{path}.provisioner[{provisioners}]");
                provisioners += 1;
                build.provisioners.push(item(inner, ctx, &kind, &at));
            }
            "post-processor" => {
                let at = format!("{path}.post-processor[{post_processors}]");
                post_processors += 1;
                build.post_processors.push(item(inner, ctx, &kind, &at));
            }
            "post-processors" => {
                for link in blocks(inner.body(), "post-processor") {
                    let [kind] = labels::<1>(link);
                    let at = format!("{path}.post-processor[{post_processors}]");
                    post_processors += 1;
                    build.post_processors.push(item(link, ctx, &kind, &at));
                }
            }
            "source" => {}
            other => {
                let at = format!("{path}.{other}");
                build.post_processors.push(Item {
                    kind: other.to_owned(),
                    reference: String::new(),
                    path: at,
                    fields: BTreeMap::new(),
                });
            }
        }
    }
    build
}

/// A block as an item: its attributes evaluated, its nested blocks as
/// arrays of objects.
fn item(block: &Block, ctx: &Context<'_>, kind: &str, path: &str) -> Item {
    let mut fields: BTreeMap<String, Field> = BTreeMap::new();
    for attr in block.body().attributes() {
        fields.insert(attr.key().to_owned(), evaluate(attr.expr(), ctx));
    }
    for nested in block.body().blocks() {
        let value = item(nested, ctx, "", "");
        let object: Result<serde_json::Map<String, serde_json::Value>, String> = value
            .fields
            .into_iter()
            .map(|(key, field)| Ok((key, field?)))
            .collect();
        let entry = fields
            .entry(nested.identifier().to_owned())
            .or_insert_with(|| Ok(serde_json::Value::Array(Vec::new())));
        match (entry, object) {
            (Ok(serde_json::Value::Array(list)), Ok(object)) => {
                list.push(serde_json::Value::Object(object));
            }
            (entry, Err(reason)) => *entry = Err(reason),
            _ => {}
        }
    }
    Item {
        kind: kind.to_owned(),
        reference: String::new(),
        path: path.to_owned(),
        fields,
    }
}

/// An expression's value; in an object literal (tags, `env`), a value
/// known only when Packer runs keeps a stand-in, so the others carry over.
fn evaluate(expr: &Expression, ctx: &Context<'_>) -> Field {
    if let Expression::Object(object) = expr {
        let mut map = serde_json::Map::new();
        for (key, value) in object {
            let key = match key {
                ObjectKey::Identifier(name) => name.to_string(),
                ObjectKey::Expression(key) => match evaluate(key, ctx)? {
                    serde_json::Value::String(key) => key,
                    other => other.to_string(),
                },
                _ => return Err("an object key the import cannot read".into()),
            };
            let value = evaluate(value, ctx)
                .unwrap_or_else(|reason| serde_json::Value::String(runtime(&reason)));
            map.insert(key, value);
        }
        return Ok(serde_json::Value::Object(map));
    }
    let value = expr.evaluate(ctx).map_err(|err| {
        let text = err.to_string();
        match text.find(ENV_ERROR) {
            Some(at) => text[at..].lines().next().unwrap_or(ENV_ERROR).to_owned(),
            None => format!("cannot be evaluated without running Packer ({text})"),
        }
    })?;
    serde_json::to_value(&value).map_err(|err| err.to_string())
}

fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == identifier)
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// A block's first `N` labels (empty where it has fewer).
fn labels<const N: usize>(block: &Block) -> [String; N] {
    std::array::from_fn(|i| {
        block
            .labels()
            .get(i)
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default()
    })
}

/// Packer's functions a template uses for names and paths: the time and
/// unique values become stand-ins, string functions run, the rest is not
/// known to the import (its fields are reported as not static).
fn declare_functions(ctx: &mut Context<'_>) {
    let string = || ParamType::String;
    ctx.declare_func(
        "timestamp",
        FuncDef::builder().build(|_| Ok(Value::from(DATE))),
    );
    ctx.declare_func(
        "uuidv4",
        FuncDef::builder().build(|_| Ok(Value::from(UNIQUE))),
    );
    ctx.declare_func(
        "formatdate",
        FuncDef::builder()
            .params([string(), string()])
            .build(|_| Ok(Value::from(DATE))),
    );
    ctx.declare_func(
        "regex_replace",
        FuncDef::builder()
            .params([string(), string(), string()])
            .build(|args| match first(&args) {
                s if is_dynamic(s) => Ok(Value::from(s)),
                _ => Err("regex_replace of a static value is not evaluated by the import".into()),
            }),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder()
            .params([string(), string(), string()])
            .build(|args| {
                let (s, from, to) = (first(&args), nth(&args, 1), nth(&args, 2));
                Ok(Value::from(s.replace(from, to)))
            }),
    );
    ctx.declare_func(
        "lower",
        FuncDef::builder()
            .param(string())
            .build(|args| Ok(Value::from(first(&args).to_lowercase()))),
    );
    ctx.declare_func(
        "upper",
        FuncDef::builder()
            .param(string())
            .build(|args| Ok(Value::from(first(&args).to_uppercase()))),
    );
    ctx.declare_func(
        "trimspace",
        FuncDef::builder()
            .param(string())
            .build(|args| Ok(Value::from(first(&args).trim()))),
    );
    ctx.declare_func(
        "env",
        FuncDef::builder()
            .param(string())
            .build(|args| Err(format!("{ENV_ERROR} {}", first(&args)))),
    );
}

fn first(args: &FuncArgs) -> &str {
    nth(args, 0)
}

fn nth(args: &FuncArgs, i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or_default()
}
