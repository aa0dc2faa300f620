//! The producer every service sends with: idempotent, `acks=all`, rebuilt when a send fails.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::KafkaSettings;

/// An idempotent producer that replaces itself when a send fails.
///
/// A producer that lost its brokers does not always come back with them. librdkafka's
/// idempotent producer rides out one broker's restart or a leader change, but after all three
/// brokers of the fault test were stopped and started again, one producer in four timed out
/// every send for the next 60 s (the brokers were answering; a fresh producer got through at
/// once), and a fatal error (a sequence gap it cannot repair) leaves a client unusable for
/// good. So after any failed send other than a full local queue (plain overload), a fresh
/// producer is built, at most every [`ResilientProducer::REBUILD_INTERVAL`]; it registers a
/// new producer id with the brokers. Sends still in flight keep the old producer alive until
/// they finish; a message that reaches Kafka twice that way is dropped by the ballot key.
pub struct ResilientProducer {
    settings: KafkaSettings,
    current: RwLock<(FutureProducer, Instant)>,
}

impl ResilientProducer {
    /// Shortest time between two rebuilds.
    pub const REBUILD_INTERVAL: Duration = Duration::from_secs(1);

    /// Builds the first producer.
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        let producer = settings.producer()?;
        Ok(Self {
            settings,
            current: RwLock::new((producer, Instant::now())),
        })
    }

    /// Sends `record` and waits for its delivery report: up to `queue_timeout` for room in the
    /// local queue, then as long as `message.timeout.ms` allows. Before a failure is returned,
    /// the producer is rebuilt unless the local queue was merely full (see the type's notes).
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        self.deliver(record, queue_timeout, None).await
    }

    /// Like [`ResilientProducer::send`], but gives up waiting after `deadline` with
    /// `MessageTimedOut`, a failure like any other. librdkafka's own `message.timeout.ms` is
    /// not a hard bound for an idempotent producer: a request already in flight when the broker
    /// went away waits for its own timeout first (seen: 13.8 s for a 5 s setting). A message
    /// still queued past the deadline may yet reach Kafka.
    pub async fn send_within<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
        deadline: Duration,
    ) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        self.deliver(record, queue_timeout, Some(deadline)).await
    }

    /// Waits up to `timeout` for queued messages to be delivered; for shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.get().flush(timeout);
    }

    /// The producer to send with now (cheap: a reference-counted handle).
    pub fn get(&self) -> FutureProducer {
        self.current
            .read()
            .expect("producer lock poisoned")
            .0
            .clone()
    }

    async fn deliver<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
        deadline: Option<Duration>,
    ) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let producer = self.get();
        let queued = producer.send(record, queue_timeout);
        let delivery = match deadline {
            None => queued.await.map_err(|(err, _)| err),
            Some(deadline) => match tokio::time::timeout(deadline, queued).await {
                Ok(delivery) => delivery.map_err(|(err, _)| err),
                Err(_) => Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                )),
            },
        };
        if let Err(err) = &delivery {
            self.recover(&producer, err);
        }
        delivery
    }

    /// Called after `failed` could not deliver because of `error`: rebuilds the producer
    /// unless the local queue was merely full, another caller already rebuilt it, or the last
    /// rebuild is too recent.
    fn recover(&self, failed: &FutureProducer, error: &KafkaError) {
        let fatal = failed.client().fatal_error();
        let overloaded = error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull);
        if overloaded && fatal.is_none() {
            return;
        }
        let mut current = self.current.write().expect("producer lock poisoned");
        let same = current.0.client().native_ptr() == failed.client().native_ptr();
        if !same || current.1.elapsed() < Self::REBUILD_INTERVAL {
            return;
        }
        match self.settings.producer() {
            Ok(fresh) => {
                tracing::warn!(error = %error, fatal = ?fatal, "Kafka send failed; replaced the producer with a fresh one");
                metrics::counter!(crate::metrics::names::KAFKA_PRODUCER_REBUILDS_TOTAL)
                    .increment(1);
                *current = (fresh, Instant::now());
            }
            Err(err) => tracing::error!(error = %err, "Cannot rebuild the Kafka producer"),
        }
    }
}
