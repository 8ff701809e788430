//! pytest node ids ↔ JUnit `(classname, name)` and the plugin's ` [SIZE]` name label.
//!
//! Implements `_pytest.junitxml.mangle_test_address` as pytest 9.1.x and 9.2.x write it
//! and the plugin's size label: a trailing ` [SMALL|MEDIUM|LARGE|XLARGE]` is the label when
//! what precedes it is a whole test name: one without `[`, or one whose parameter id is
//! closed (ends in `]`). Parameter ids hold unbalanced brackets in real suites (version
//! ranges such as `[1.0, 2.0.dev0)`), so brackets are not counted; but the ` [LARGE]` of an
//! unsized test whose id ends in ` [LARGE` (`test_x[a [LARGE]`) closes that id, and taking
//! it for a label would leave `test_x[a`, which no test is called.

use crate::model::Size;

/// `(classname, name)` from a node id, pytest 9.1.x: split on the first `[`, then on `::`.
pub fn mangle_9_1(nodeid: &str) -> (String, String) {
    let (mut c, mut n) = (String::new(), String::new());
    mangle_9_1_into(nodeid, &mut c, &mut n);
    (c, n)
}

/// [`mangle_9_1`] into reused buffers (no allocation once they are large enough).
pub fn mangle_9_1_into(nodeid: &str, classname: &mut String, name: &mut String) {
    classname.clear();
    name.clear();
    let (path, params) = match nodeid.find('[') {
        Some(i) => (&nodeid[..i], &nodeid[i..]),
        None => (nodeid, ""),
    };
    match split_sep(path) {
        None => push_module_path(name, path),
        Some((module, tail)) => {
            push_module_path(classname, module);
            name.push_str(push_classes(classname, tail));
        }
    }
    name.push_str(params);
}

/// `(classname, name)` from a node id, pytest 9.2.x (`NodeId.parse`): split on the first
/// `::` first (a path never has its brackets read), then the tail at its first `[`.
pub fn mangle_9_2(nodeid: &str) -> (String, String) {
    let (mut c, mut n) = (String::new(), String::new());
    mangle_9_2_into(nodeid, &mut c, &mut n);
    (c, n)
}

/// [`mangle_9_2`] into reused buffers (no allocation once they are large enough).
pub fn mangle_9_2_into(nodeid: &str, classname: &mut String, name: &mut String) {
    classname.clear();
    name.clear();
    let Some((path, tail)) = split_sep(nodeid) else {
        push_module_path(name, nodeid);
        return;
    };
    let (name_part, params) = match memchr::memchr(b'[', tail.as_bytes()) {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    push_module_path(classname, path);
    name.push_str(push_classes(classname, name_part));
    if let Some(params) = params {
        name.push('[');
        name.push_str(params.strip_suffix(']').unwrap_or(params));
        name.push(']');
    }
}

/// Appends `A.B` of `A::B::last` to `classname` (each after a `.`), returns `last`.
fn push_classes<'a>(classname: &mut String, names: &'a str) -> &'a str {
    let mut rest = names;
    while let Some((class, tail)) = split_sep(rest) {
        classname.push('.');
        classname.push_str(class);
        rest = tail;
    }
    rest
}

/// `a::b::c` → (`a`, `b::c`): `split_once("::")` without a substring searcher.
fn split_sep(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &b[from..]) {
        let i = from + i;
        if b.get(i + 1) == Some(&b':') {
            return Some((&s[..i], &s[i + 2..]));
        }
        from = i + 1;
    }
    None
}

/// Appends `tests/a/b.py` as `tests.a.b`.
fn push_module_path(out: &mut String, path: &str) {
    let start = out.len();
    let mut rest = path;
    while let Some(i) = memchr::memchr(b'/', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        out.push('.');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    if out[start..].ends_with(".py") {
        out.truncate(out.len() - 3);
    }
}

/// Splits a trailing plugin label: `test_x[p] [SMALL]` → (`test_x[p]`, Some(Small)).
pub fn split_size_label(name: &str) -> (&str, Option<Size>) {
    for (suffix, size) in [
        (" [SMALL]", Size::Small),
        (" [MEDIUM]", Size::Medium),
        (" [LARGE]", Size::Large),
        (" [XLARGE]", Size::Xlarge),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if !base.contains('[') || base.ends_with(']') {
                return (base, Some(size));
            }
        }
    }
    (name, None)
}

/// Removes `--junitprefix` from a classname: `PFX.tests.x` → `tests.x`, `PFX` → ``.
pub fn strip_prefix<'a>(classname: &'a str, prefix: &str) -> &'a str {
    if prefix.is_empty() {
        return classname;
    }
    if classname == prefix {
        return "";
    }
    match classname.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('.') => &rest[1..],
        _ => classname,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(f: fn(&str) -> (String, String), id: &str) -> (String, String) {
        f(id)
    }

    #[test]
    fn formats_examples_both_versions() {
        // pytest's mangling of real node ids, written down by hand.
        let cases = [
            (
                "tests/test_sizes.py::test_medium_function",
                "tests.test_sizes",
                "test_medium_function",
            ),
            (
                "tests/test_sizes.py::TestMarkedClass::TestNested::test_nested_method",
                "tests.test_sizes.TestMarkedClass.TestNested",
                "test_nested_method",
            ),
            (
                "tests/unit/test_deep.py::TestDeep::test_deep_pass",
                "tests.unit.test_deep.TestDeep",
                "test_deep_pass",
            ),
            (
                "tests/test_params.py::test_awkward_ids[a::b]",
                "tests.test_params",
                "test_awkward_ids[a::b]",
            ),
            (
                "tests/test_params.py::test_awkward_ids[fake [LARGE]]",
                "tests.test_params",
                "test_awkward_ids[fake [LARGE]]",
            ),
            ("tests/test_skip_module.py", "", "tests.test_skip_module"),
            (
                "broken/test_broken_import.py",
                "",
                "broken.test_broken_import",
            ),
            ("tests/p.py::t[br[ack]et]", "tests.p", "t[br[ack]et]"),
        ];
        for (id, cls, name) in cases {
            for f in [mangle_9_1 as fn(&str) -> (String, String), mangle_9_2] {
                assert_eq!(m(f, id), (cls.to_string(), name.to_string()), "{id}");
            }
        }
    }

    #[test]
    fn versions_differ_when_the_path_has_a_bracket() {
        let id = "tests/test[1].py::test_a";
        assert_eq!(mangle_9_2(id), ("tests.test[1]".into(), "test_a".into()));
        // 9.1 splits at the first `[`, inside the path.
        assert_eq!(
            mangle_9_1(id),
            ("".into(), "tests.test[1].py::test_a".into())
        );
    }

    #[test]
    fn label_split() {
        assert_eq!(
            split_size_label("test_a [SMALL]"),
            ("test_a", Some(Size::Small))
        );
        assert_eq!(
            split_size_label("test_awkward_ids[fake [LARGE]] [SMALL]"),
            ("test_awkward_ids[fake [LARGE]]", Some(Size::Small))
        );
        // 9.2: a param id that merely contains a fake label is not labelled.
        assert_eq!(
            split_size_label("test_awkward_ids[fake [LARGE]]"),
            ("test_awkward_ids[fake [LARGE]]", None)
        );
        // Version ranges in parameter ids: unbalanced brackets before the label.
        assert_eq!(
            split_size_label("test_range_notation[[1.0, 2.0.dev0)] [SMALL]"),
            ("test_range_notation[[1.0, 2.0.dev0)]", Some(Size::Small))
        );
        assert_eq!(
            split_size_label("test_range_notation[(0.9, 1.0]] [MEDIUM]"),
            ("test_range_notation[(0.9, 1.0]]", Some(Size::Medium))
        );
        // An unsized test whose param id ends in " [LARGE": the "]" closes the id, so it is
        // no label; the same test sized has its label after the closed id.
        assert_eq!(
            split_size_label("test_x[a [LARGE]"),
            ("test_x[a [LARGE]", None)
        );
        assert_eq!(
            split_size_label("test_x[a [LARGE] [SMALL]"),
            ("test_x[a [LARGE]", Some(Size::Small))
        );
        assert_eq!(split_size_label("test_b[SMALL]"), ("test_b[SMALL]", None));
        assert_eq!(
            split_size_label("test_c  [SMALL] "),
            ("test_c  [SMALL] ", None)
        );
    }

    #[test]
    fn prefix() {
        assert_eq!(strip_prefix("PFX.tests.x", "PFX"), "tests.x");
        assert_eq!(strip_prefix("PFX", "PFX"), "");
        assert_eq!(strip_prefix("PFXtests", "PFX"), "PFXtests");
        assert_eq!(strip_prefix("tests.x", ""), "tests.x");
    }
}
