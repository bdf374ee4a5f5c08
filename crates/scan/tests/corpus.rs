//! Accuracy on a generated, labelled corpus (small here; `scripts/bench-scan.sh` makes 1 GB):
//! recall of card numbers of every brand in the spellings the stray-card-number guard accepts,
//! grouped as printed, and precision of every kind, among as many look-alikes.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use fieldseal_core::envelope::CardBrand;
use fieldseal_scan::corpus;
use fieldseal_scan::detect::Rules;

#[test]
fn recall_and_precision_on_a_labelled_corpus_meet_the_floors() {
    let dir = tempfile::tempdir().unwrap();
    let summary = corpus::generate(dir.path(), 4_000_000, 7).unwrap();
    assert!(
        summary.planted > 3000 && summary.lookalikes > 3000,
        "{summary:?}"
    );
    let eval = corpus::evaluate(dir.path(), Rules::default()).unwrap();
    println!("{}", eval.to_text());
    assert_eq!(eval.bytes, summary.bytes);
    for kind in ["card_number", "email", "phone", "us_ssn", "iban"] {
        let s = eval.kinds[kind];
        assert!(s.found > 100, "{kind}: {s:?}");
        assert!(
            s.precision() >= 0.99,
            "{kind} precision {:.4}",
            s.precision()
        );
    }
    let cards = eval.kinds["card_number"];
    assert!(cards.recall() >= 0.99, "card recall {:.4}", cards.recall());
    // Every brand fieldseal-core knows is planted, brands added later included.
    for brand in CardBrand::ALL {
        let s = eval.brands.get(brand.as_str()).copied().unwrap_or_default();
        assert!(
            s.found + s.missed > 0,
            "no {} number planted",
            brand.as_str()
        );
        assert!(
            s.recall() >= 0.99,
            "{} recall {:.4}",
            brand.as_str(),
            s.recall()
        );
    }
}

#[test]
fn the_corpus_labels_hold_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let summary = corpus::generate(dir.path(), 200_000, 3).unwrap();
    let labels = std::fs::read_to_string(dir.path().join(corpus::LABELS_FILE)).unwrap();
    assert_eq!(labels.lines().count(), summary.planted);
    // File names, line numbers, kinds, brands and spellings only: no digit run long enough to be
    // part of a value.
    let longest_digit_run = labels
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_digit_run < 6, "{longest_digit_run}");
    for l in labels.lines() {
        let label: corpus::Label = serde_json::from_str(l).unwrap();
        assert!(label.line > 0 && label.file.starts_with(['a', 'e']));
    }
}
