//! A review's values as CEL trees whose maps, lists and strings are shared, not copied.
//!
//! CEL's built-in containers copy every element they are cloned with: binding
//! `variables.containers` to `object.spec.containers`, adding the container lists
//! together, and each step of a `filter` or `all` copied whole container maps. The trees a
//! review is lent to CEL as hold each map, list and string once, behind an `Arc`; a copy
//! of one is a reference count. Everything else a value does (fields, `in`, `size`,
//! comparisons, equality, iteration) is the built-in value's own, so results are the same.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::traits::{
    Adder, Comparer, Container, Divider, Indexer, Iterable, Modder, Multiplier, Negator, Sizer,
    Subtractor, Zeroer,
};
use cel::common::types::{CelList, CelMap, CelMapKey, CelString, Type};
use cel::common::value::{Builtin, BuiltinRef, CowVal, Val};
use cel::{ExecutionError, Value as CelValue};

/// A built-in value held once: cloning it shares it.
#[derive(Debug)]
struct Shared<T>(Arc<T>);

/// `value` as a tree of shared maps, lists and strings; `None` when CEL has no tree for it.
pub(super) fn shared_tree(value: &CelValue) -> Option<Box<dyn Val>> {
    Some(match value {
        CelValue::Map(map) => {
            let entries = map
                .map
                .iter()
                .map(|(k, v)| Some((CelMapKey::from(k.clone()), shared_tree(v)?)))
                .collect::<Option<HashMap<_, _>>>()?;
            Box::new(Shared(Arc::new(CelMap::from(entries))))
        }
        CelValue::List(items) => {
            let items = items.iter().map(shared_tree).collect::<Option<Vec<_>>>()?;
            Box::new(Shared(Arc::new(CelList::from(items))))
        }
        CelValue::String(s) => Box::new(Shared(Arc::new(CelString::from(s.to_string())))),
        other => Box::<dyn Val>::try_from(other.clone()).ok()?,
    })
}

impl<T: Val + Clone + 'static> Val for Shared<T> {
    fn get_type(&self) -> &Type {
        self.0.get_type()
    }

    fn cel_type() -> &'static Type {
        T::cel_type()
    }

    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        self.0.as_adder()
    }

    fn as_comparer(&self) -> Option<&dyn Comparer> {
        self.0.as_comparer()
    }

    fn as_container(&self) -> Option<&dyn Container> {
        self.0.as_container()
    }

    fn as_divider<'b, 'v>(&'b self) -> Option<&'b (dyn Divider + 'v)>
    where
        Self: 'v,
    {
        self.0.as_divider()
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        self.0.as_indexer()
    }

    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        if self.0.as_indexer().is_some() {
            Some(self)
        } else {
            None
        }
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        self.0.as_iterable()
    }

    fn as_modder<'b, 'v>(&'b self) -> Option<&'b (dyn Modder + 'v)>
    where
        Self: 'v,
    {
        self.0.as_modder()
    }

    fn as_multiplier<'b, 'v>(&'b self) -> Option<&'b (dyn Multiplier + 'v)>
    where
        Self: 'v,
    {
        self.0.as_multiplier()
    }

    fn as_negator<'b, 'v>(&'b self) -> Option<&'b (dyn Negator + 'v)>
    where
        Self: 'v,
    {
        self.0.as_negator()
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        self.0.as_sizer()
    }

    fn as_subtractor<'b, 'v>(&'b self) -> Option<&'b (dyn Subtractor + 'v)>
    where
        Self: 'v,
    {
        self.0.as_subtractor()
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        self.0.as_zeroer()
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.0.equals(other)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(Shared(Arc::clone(&self.0)))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        self.0.as_any()
    }

    fn as_builtin<'b, 'v>(&'b self) -> BuiltinRef<'b, 'v>
    where
        Self: 'v,
    {
        self.0.as_builtin()
    }

    fn into_builtin<'v>(self: Box<Self>) -> Option<Builtin<'v>>
    where
        Self: 'v,
    {
        Box::new(Arc::unwrap_or_clone(self.0)).into_builtin()
    }
}

impl<T: Val + 'static> Indexer for Shared<T> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match self.0.as_indexer() {
            Some(indexer) => indexer.get(idx),
            None => Err(ExecutionError::UnexpectedType {
                got: self.0.get_type().name().to_owned(),
                want: "missing trait Indexer".to_owned(),
            }),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(self.get(idx)?.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `text` evaluated with `x` bound as a shared tree and as CEL's own tree: the two
    /// results, or their errors as text.
    fn both(text: &str, x: &serde_json::Value) -> [Result<CelValue, String>; 2] {
        let env = Arc::new(super::super::cel::environment().expect("environment"));
        let program = env.compile(text).expect("compiles");
        let value = super::super::cel::to_cel(x);
        let trees: [Box<dyn Val>; 2] = [
            shared_tree(&value).expect("shared tree"),
            Box::<dyn Val>::try_from(value.clone()).expect("built-in tree"),
        ];
        trees.map(|tree| {
            let mut context = cel::Context::with_env(env.clone());
            context.add_variable_as_val("x", tree);
            program.execute(&context).map_err(|e| e.to_string())
        })
    }

    fn pod() -> serde_json::Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "containers": [
                    {"name": "a", "image": "nginx:1.27", "securityContext": {"privileged": false},
                     "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                    {"name": "b", "image": "busybox:latest"}
                ],
                "initContainers": [{"name": "init", "image": "alpine:3"}],
                "replicas": 3,
                "ratio": 1.5,
                "tags": ["x", "y"],
                "empty": {},
                "none": null
            }
        })
    }

    #[test]
    fn shared_trees_evaluate_as_builtin_trees() {
        let expressions = [
            // fields, has, size, indexing and iteration
            "x.metadata.name",
            "has(x.spec.containers[0].securityContext)",
            "has(x.spec.containers[1].securityContext)",
            "size(x.spec.containers) + size(x.metadata.labels)",
            "x.spec.containers[1].image",
            "x.metadata.labels['tier']",
            "x.spec.missing",
            "x.spec.containers[5]",
            // the containers of a pod: concatenated, filtered, mapped
            "(x.spec.containers + x.spec.initContainers).filter(c, !has(c.securityContext)).map(c, c.image)",
            "(x.spec.containers + x.spec.initContainers).map(c, c.name).join(', ')",
            "x.spec.containers.all(c, c.image.contains(':'))",
            "x.spec.containers.exists(c, c.ports.exists(p, p.containerPort == 443))",
            "x.spec.containers.exists_one(c, c.image.endsWith(':latest'))",
            "x.spec.containers[0].ports.map(p, p.containerPort * 2)",
            // equality and membership, both ways round and with literals
            "x.metadata.labels == {'app': 'web', 'tier': 'front'}",
            "{'app': 'web', 'tier': 'front'} == x.metadata.labels",
            "x.spec.tags == ['x', 'y'] && ['x', 'y'] == x.spec.tags",
            "x.spec.empty == {} && {} == x.spec.empty",
            "x.spec.containers[1] in x.spec.containers",
            "'y' in x.spec.tags && 'app' in x.metadata.labels",
            "x.spec.containers[0] == x.spec.containers[1]",
            "x.spec.none == null",
            // strings, numbers and conversions
            "x.spec.containers[1].image.startsWith('busybox') && x.metadata.name < 'zz'",
            "x.spec.containers[0].image.replace(':', '@') + '/' + x.metadata.name",
            "x.spec.replicas > 2 && x.spec.ratio < 2.0",
            "string(x.spec.replicas) + x.spec.tags[0]",
            "type(x.spec) == map && type(x.spec.tags) == list && type(x.metadata.name) == string",
            // a whole subtree as the result, and indexing of owned values
            "x.spec.containers[0]",
            "(x.spec.replicas > 1 ? x.spec : {}).containers[1].name",
            "[x.spec.containers[1]][0].image",
            "x.spec.containers.map(c, c)[0].ports[1]",
            "{x.metadata.name: x.spec.tags}",
            "x.metadata.labels.filter(k, k != 'app')",
            "x.spec.tags + x.spec.tags",
            "x.spec.containers.sortBy(c, c.name).map(c, c.name)",
            "x.spec.replicas + x.metadata.name",
            // optional fields and values
            "x.?spec.?replicas.orValue(0) + x.spec.?missing.orValue(1)",
            "x.spec.?containers.orValue([]).map(c, c.name)",
            "optional.of(x.spec.tags).value()[1]",
            "x.metadata.?labels[?'app'].orValue('none')",
        ];
        let pod = pod();
        for text in expressions {
            let [shared, builtin] = both(text, &pod);
            assert_eq!(shared, builtin, "{text}");
        }
        // Not vacuous: the results include values and errors.
        assert_eq!(both("x.metadata.name", &pod)[0], Ok(CelValue::from("web")));
        assert!(both("x.spec.missing", &pod)[0].is_err());
    }

    #[test]
    fn copies_share_the_value() {
        let value = super::super::cel::to_cel(&pod());
        let tree = shared_tree(&value).expect("tree");
        let copy = tree.clone_as_boxed();
        let (a, b) = (
            tree.downcast_ref::<CelMap>().expect("a map"),
            copy.downcast_ref::<CelMap>().expect("a map"),
        );
        assert!(std::ptr::eq(a, b), "the copy is the same map");
        let spec = a.inner().get(&CelMapKey::from("spec")).expect("spec");
        let containers = spec
            .as_indexer()
            .expect("indexable")
            .get(&CelString::from("containers"))
            .expect("containers");
        let list = containers.downcast_ref::<CelList>().expect("a list");
        let first = list.inner()[0].clone_as_boxed();
        assert!(std::ptr::eq(
            list.inner()[0].downcast_ref::<CelMap>().expect("a map"),
            first.downcast_ref::<CelMap>().expect("a map"),
        ));
    }

    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            "[a-z:]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("spec".to_string()),
                        Just("image".to_string()),
                        "[a-z]{1,3}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// On any value, a shared tree gives the built-in tree's results (maps iterate in no
        /// set order, so only order-free expressions are compared; errors by their presence,
        /// since their text may print a map).
        #[test]
        fn any_value_evaluates_alike(value in json()) {
            for text in [
                "x == x",
                "x in [x] && [x, x].map(v, v) == [x, x]",
                "size(x)",
                "has(x.spec) ? x.spec : 0",
                "[x].filter(v, v == x).size() + [x, 1].exists_one(v, v == 1 || v == x) ? 1 : 0",
                "x.spec.image.startsWith('a') || x.image == 'b:'",
                "x.all(k, k.size() > 1)",
                "x[0]",
                "(x + x)[1] == x[1]",
            ] {
                let [shared, builtin] = both(text, &value);
                match (&shared, &builtin) {
                    (Err(_), Err(_)) => {}
                    _ => proptest::prop_assert_eq!(shared, builtin, "{}", text),
                }
            }
        }
    }
}
