//! BM25 over the passages with Tantivy.
//!
//! Fields and why: `title` (boost 3), `tags` (tags, product type, vendor; boost 2) and
//! `text` (boost 1) go through one English analyzer (lowercase, stop words, Porter stemmer)
//! so "returns" finds "return"; `exact` holds SKUs and handles whole and lowercased, matched
//! term by term against the query's tokens, so "MCJ-RED-M" finds its product even though
//! the analyzer would split it; `shop_id` and `doc_type` are raw terms used as filters; `ord`
//! is the passage's row in the generation (metadata and vector live outside Tantivy), a
//! fast field so a hit's row is read from a column instead of decompressing its stored
//! document.
//!
//! Shopper text is parsed leniently: quotes, colons or a stray `-` are words, never syntax
//! errors.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
    TextAnalyzer,
};
use tantivy::{Index, IndexReader, ReloadPolicy, Term, doc};

use crate::IndexError;
use crate::documents::{DocType, Passage};

const ENGLISH: &str = "en_store";
const ORD: &str = "ord";
const EXACT: &str = "exact_lower";
const TITLE_BOOST: f32 = 3.0;
const TAGS_BOOST: f32 = 2.0;
const EXACT_BOOST: f32 = 5.0;

#[derive(Debug, Clone, Copy)]
struct Fields {
    ord: Field,
    shop_id: Field,
    doc_type: Field,
    title: Field,
    tags: Field,
    text: Field,
    exact: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let english = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ENGLISH)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let exact = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(EXACT)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        ord: builder.add_u64_field(ORD, FAST),
        shop_id: builder.add_text_field("shop_id", STRING),
        doc_type: builder.add_text_field("doc_type", STRING),
        title: builder.add_text_field("title", english.clone()),
        tags: builder.add_text_field("tags", english.clone()),
        text: builder.add_text_field("text", english),
        exact: builder.add_text_field("exact", exact),
    };
    (builder.build(), fields)
}

fn register_analyzers(index: &Index) {
    let english = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(ENGLISH, english);
    let exact = TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .build();
    index.tokenizers().register(EXACT, exact);
}

/// Writes the BM25 index of `passages` into `dir` (which must be empty); `ord` is each
/// passage's position in the slice.
pub fn build(dir: &Path, passages: &[Passage]) -> Result<(), IndexError> {
    let (schema, f) = schema();
    let index = Index::create_in_dir(dir, schema)?;
    register_analyzers(&index);
    // One indexing thread: the index is small next to embedding, which has the cores.
    let mut writer = index.writer_with_num_threads(1, 50_000_000)?;
    for (ord, p) in passages.iter().enumerate() {
        let mut document = doc!(
            f.ord => ord as u64,
            f.shop_id => p.shop_id.as_str(),
            f.doc_type => p.doc_type.as_str(),
            f.title => p.title.as_str(),
            f.tags => p.tags.as_str(),
            f.text => p.text.as_str(),
        );
        for id in &p.exact {
            document.add_text(f.exact, id);
        }
        writer.add_document(document)?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok(())
}

/// An open BM25 index; cheap to share between threads.
pub struct Bm25 {
    reader: IndexReader,
    parser: QueryParser,
    fields: Fields,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25").finish_non_exhaustive()
    }
}

/// Which passages a search may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this shop's passages (all shops when `None`).
    pub shop: Option<String>,
    /// Only these doc types (all when empty).
    pub doc_types: Vec<DocType>,
}

impl Bm25 {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let index = Index::open_in_dir(dir)?;
        register_analyzers(&index);
        let (_, fields) = schema();
        let mut parser =
            QueryParser::for_index(&index, vec![fields.title, fields.tags, fields.text]);
        parser.set_field_boost(fields.title, TITLE_BOOST);
        parser.set_field_boost(fields.tags, TAGS_BOOST);
        // A generation never changes once written: no reload thread.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            parser,
            fields,
        })
    }

    /// The `limit` best passages as `(ord, bm25 score)`, best first.
    pub fn search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(usize, f32)>, IndexError> {
        let f = self.fields;
        let (words, _errors) = self.parser.parse_query_lenient(query);
        let mut any: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, words)];
        for token in query.split_whitespace() {
            let token = token
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            if token.len() >= 3 {
                let term = TermQuery::new(
                    Term::from_field_text(f.exact, &token),
                    IndexRecordOption::Basic,
                );
                any.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(term), EXACT_BOOST)),
                ));
            }
        }
        let mut all: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(any)))];
        if let Some(shop) = &filter.shop {
            all.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.shop_id, shop),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if !filter.doc_types.is_empty() {
            let types = filter
                .doc_types
                .iter()
                .map(|t| -> (Occur, Box<dyn Query>) {
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(
                            Term::from_field_text(f.doc_type, t.as_str()),
                            IndexRecordOption::Basic,
                        )),
                    )
                })
                .collect();
            all.push((Occur::Must, Box::new(BooleanQuery::new(types))));
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(all),
            &TopDocs::with_limit(limit.max(1)).order_by_score(),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ord = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64(ORD)?
                .first(address.doc_id)
                .ok_or_else(|| IndexError::Corrupt("BM25 document without ord".into()))?;
            hits.push((ord as usize, score));
        }
        Ok(hits)
    }
}
