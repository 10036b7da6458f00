//! Query embedding with dynamic batching.
//!
//! Embedding the shopper's message is most of a turn's CPU. One model call has a fixed cost
//! on top of the arithmetic, so several short messages embedded as one batch cost much
//! less than the same messages one by one: on this machine's kind (one core, int8 model,
//! 12 word pieces) 3.7 ms for one message, 6.4 ms for two, 11.1 ms for four (BENCHMARKS.md).
//!
//! [`QueryEmbedder`] runs one worker thread per model instance. A worker takes the oldest
//! waiting message and whatever else is already waiting (up to the configured
//! `embedding_batch`) and embeds them together. It never waits for a batch to fill: when
//! the server is quiet a message is embedded alone at once, and batches only form from
//! messages that would have queued anyway, so batching adds no latency, it only shortens
//! the queue.
//!
//! A model call pads every text to the longest in it, and the padding costs as much as real
//! words: the evaluation mix averages 12 word pieces, and eight random messages padded to
//! their longest do 1.5 times the work of the same eight unpadded. So a batch is embedded
//! as a few calls of similar lengths ([`similar_lengths`]).

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use index::{Embedder, IndexError};
use tokio::sync::oneshot;

use crate::error::ServerError;

/// A text at most this much longer than the shortest of its call joins it (in characters,
/// a stand-in for word pieces: `5/4` of the shortest plus a few).
const PADDING_ALLOWED: (usize, usize, usize) = (5, 4, 8);

struct Request {
    text: String,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// Embeds single messages from many concurrent requests, batching those that wait.
pub struct QueryEmbedder {
    queue: Sender<Request>,
    /// The model, also lent to index updates.
    model: Arc<dyn Embedder>,
}

impl std::fmt::Debug for QueryEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEmbedder").finish_non_exhaustive()
    }
}

impl QueryEmbedder {
    /// Starts `workers` threads over `embedder` (one per model instance it holds), each
    /// embedding at most `max_batch` messages at a time. They stop when the `QueryEmbedder`
    /// is dropped.
    pub fn start(
        embedder: Arc<dyn Embedder>,
        workers: usize,
        max_batch: usize,
    ) -> Result<Self, ServerError> {
        let (queue, waiting) = mpsc::channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for (n, embedder) in std::iter::repeat_n(embedder.clone(), workers.max(1)).enumerate() {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("embed-{n}"))
                .spawn(move || work(embedder.as_ref(), &waiting, max_batch.max(1)))
                .map_err(|e| ServerError::NotReady(format!("cannot start embedding: {e}")))?;
        }
        Ok(Self {
            queue,
            model: embedder,
        })
    }

    /// The model the workers use (index updates embed changed passages with it).
    pub fn model(&self) -> Arc<dyn Embedder> {
        self.model.clone()
    }

    /// The message's vector.
    pub async fn embed(&self, text: String) -> Result<Vec<f32>, ServerError> {
        let (reply, vector) = oneshot::channel();
        self.queue
            .send(Request { text, reply })
            .map_err(|_| ServerError::NotReady("the embedding workers have stopped".into()))?;
        vector
            .await
            .map_err(|_| ServerError::NotReady("an embedding worker stopped".into()))?
            .map_err(|message| IndexError::Model(message).into())
    }
}

/// A worker: takes a batch, embeds it, answers each request, until the queue is closed.
fn work(embedder: &dyn Embedder, waiting: &Mutex<Receiver<Request>>, max_batch: usize) {
    while let Some(batch) = next_batch(waiting, max_batch) {
        for call in similar_lengths(batch) {
            embed_call(embedder, call);
        }
    }
}

/// Splits a batch into runs of similar text lengths, shortest first.
fn similar_lengths(mut batch: Vec<Request>) -> Vec<Vec<Request>> {
    batch.sort_by_key(|r| r.text.len());
    let (times, per, plus) = PADDING_ALLOWED;
    let mut calls: Vec<Vec<Request>> = Vec::new();
    for request in batch {
        match calls.last_mut() {
            Some(call) if request.text.len() <= call[0].text.len() * times / per + plus => {
                call.push(request);
            }
            _ => calls.push(vec![request]),
        }
    }
    calls
}

/// Embeds one call's texts and answers its requests.
fn embed_call(embedder: &dyn Embedder, batch: Vec<Request>) {
    let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
    let result = embedder.embed(&texts);
    match result {
        Ok(vectors) if vectors.len() == batch.len() => {
            for (request, vector) in batch.into_iter().zip(vectors) {
                // The requester may have gone (client disconnected): nothing to do.
                let _ = request.reply.send(Ok(vector));
            }
        }
        Ok(vectors) => answer_all(
            batch,
            &format!("the model returned {} vectors", vectors.len()),
        ),
        Err(error) => answer_all(batch, &error.to_string()),
    }
}

fn answer_all(batch: Vec<Request>, error: &str) {
    for request in batch {
        let _ = request.reply.send(Err(error.to_string()));
    }
}

/// Blocks for the oldest waiting request, then adds what else is already waiting. `None`
/// once the queue is closed and empty.
fn next_batch(waiting: &Mutex<Receiver<Request>>, max_batch: usize) -> Option<Vec<Request>> {
    // Holding the lock while blocked is intended: the other workers have nothing to take.
    let waiting = crate::unpoisoned(waiting);
    let mut batch = vec![waiting.recv().ok()?];
    while batch.len() < max_batch {
        match waiting.try_recv() {
            Ok(request) => batch.push(request),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Vectors that encode the text's length, and a log of batch sizes; one call at a time
    /// and slow, so requests pile up behind it.
    struct Slow {
        batches: Mutex<Vec<usize>>,
        calls: AtomicUsize,
    }

    impl Embedder for Slow {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.batches.lock().unwrap().push(texts.len());
            if texts.contains(&"fail") {
                return Err(IndexError::Model("refused".into()));
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
        fn dimension(&self) -> usize {
            1
        }
        fn model_id(&self) -> &str {
            "text-length"
        }
    }

    fn slow() -> Arc<Slow> {
        Arc::new(Slow {
            batches: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_messages_share_a_call_and_each_gets_its_own_vector() {
        let model = slow();
        let embedder = Arc::new(QueryEmbedder::start(model.clone(), 1, 8).unwrap());
        let texts: Vec<String> = (1..=20).map(|n| "x".repeat(n)).collect();
        let tasks: Vec<_> = texts
            .iter()
            .map(|t| {
                let (embedder, t) = (embedder.clone(), t.clone());
                tokio::spawn(async move { embedder.embed(t).await })
            })
            .collect();
        for (text, task) in texts.iter().zip(tasks) {
            assert_eq!(task.await.unwrap().unwrap(), vec![text.len() as f32]);
        }
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 20);
        assert!(batches.iter().all(|&b| b <= 8), "{batches:?}");
        assert!(batches.len() < 20, "no message shared a call: {batches:?}");
    }

    #[test]
    fn a_batch_is_embedded_as_calls_of_similar_lengths() {
        let requests = [80, 10, 31, 12, 30, 11].map(|n| Request {
            text: "x".repeat(n),
            reply: oneshot::channel().0,
        });
        let calls: Vec<Vec<usize>> = similar_lengths(requests.into())
            .iter()
            .map(|call| call.iter().map(|r| r.text.len()).collect())
            .collect();
        assert_eq!(calls, vec![vec![10, 11, 12], vec![30, 31], vec![80]]);
    }

    #[tokio::test]
    async fn a_quiet_server_embeds_a_message_alone() {
        let model = slow();
        let embedder = QueryEmbedder::start(model.clone(), 2, 8).unwrap();
        for text in ["where is my order", "do you ship to Canada"] {
            assert_eq!(
                embedder.embed(text.into()).await.unwrap(),
                vec![text.len() as f32]
            );
        }
        assert_eq!(*model.batches.lock().unwrap(), vec![1, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_call_fails_its_requests_and_the_worker_goes_on() {
        let model = slow();
        let embedder = QueryEmbedder::start(model.clone(), 1, 8).unwrap();
        let error = embedder.embed("fail".into()).await.unwrap_err();
        assert!(error.to_string().contains("refused"), "{error}");
        assert_eq!(embedder.embed("ok".into()).await.unwrap(), vec![2.0]);
        assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    }
}
