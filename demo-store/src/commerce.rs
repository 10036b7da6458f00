//! The store, its customers and its orders, each derived from its index alone.
//!
//! Time runs over a fixed window (the quarter before the export) with a weekly rhythm and
//! a Labor Day sale that multiplies orders and, a few days later, "where is my order"
//! conversations. Orders are numbered in time order, so the orders placed before any
//! instant are a prefix `0..n` found by binary search over per-day counts.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone};

use super::catalog::{self, Product};
use super::rng::{Rng, Stream};

/// The store's clock: Reno is on Pacific Daylight Time for the whole window.
pub fn store_offset() -> FixedOffset {
    FixedOffset::west_opt(7 * 3600).expect("valid offset")
}

pub const WINDOW_START: (i32, u32, u32) = (2026, 8, 1);
pub const WINDOW_DAYS: i64 = 92;
/// The sale day (Labor Day), as a day offset in the window.
pub const SALE_DAY: i64 = 37;

pub const SHOP_ID: &str = "ridgeline-outfitters.myshopify.com";
pub const SHOP_DOMAIN: &str = "ridgeline-outfitters.com";
pub const SHOP_NUMERIC_ID: i64 = 68_310_452_233;

pub fn window_start() -> DateTime<FixedOffset> {
    let (y, m, d) = WINDOW_START;
    let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
    store_offset()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("fixed offsets are unambiguous")
}

/// The instant the export was taken: the end of the window.
pub fn exported_at() -> DateTime<FixedOffset> {
    window_start() + Duration::days(WINDOW_DAYS) - Duration::seconds(1)
}

/// Shopify's REST timestamp form, in the shop's offset.
pub fn ts(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Relative volume of a day: weekly rhythm plus the sale.
pub fn day_weight(day: i64, sale_multiplier: f64) -> f64 {
    let weekday = (window_start() + Duration::days(day))
        .format("%u")
        .to_string();
    let rhythm = match weekday.as_str() {
        "1" => 1.25,
        "2" => 1.15,
        "3" => 1.05,
        "4" => 1.0,
        "5" => 0.9,
        "6" => 0.7,
        _ => 0.75,
    };
    let sale = match day - SALE_DAY {
        0 => sale_multiplier,
        -2 | -1 | 1 => 1.0 + (sale_multiplier - 1.0) * 0.35,
        _ => 1.0,
    };
    rhythm * sale
}

/// Relative volume by hour of the day (local): a lunchtime and an evening peak.
pub const HOUR_WEIGHTS: [(i64, f64); 24] = [
    (0, 0.6),
    (1, 0.4),
    (2, 0.25),
    (3, 0.2),
    (4, 0.2),
    (5, 0.35),
    (6, 0.8),
    (7, 1.3),
    (8, 2.0),
    (9, 2.6),
    (10, 3.0),
    (11, 3.2),
    (12, 3.3),
    (13, 3.1),
    (14, 2.8),
    (15, 2.5),
    (16, 2.3),
    (17, 2.2),
    (18, 2.4),
    (19, 2.9),
    (20, 3.0),
    (21, 2.5),
    (22, 1.6),
    (23, 1.0),
];

/// Splits `total` over the window's days by weight, keeping fractions so the sum is exact.
pub fn per_day_counts(total: usize, sale_multiplier: f64) -> Vec<usize> {
    let weights: Vec<f64> = (0..WINDOW_DAYS)
        .map(|d| day_weight(d, sale_multiplier))
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut carried = 0.0;
    let mut counts = Vec::with_capacity(weights.len());
    for w in weights {
        carried += total as f64 * w / sum;
        let n = carried.floor();
        counts.push(n as usize);
        carried -= n;
    }
    let assigned: usize = counts.iter().sum();
    if let Some(last) = counts.last_mut() {
        *last += total - assigned.min(total);
    }
    counts
}

/// A time on `day` with the hourly shape.
pub fn time_on_day(rng: &mut Rng, day: i64) -> DateTime<FixedOffset> {
    let hour = *rng.weighted(&HOUR_WEIGHTS);
    window_start()
        + Duration::days(day)
        + Duration::hours(hour)
        + Duration::seconds(rng.between(0, 3599))
}

// -- customers ---------------------------------------------------------------------------

const FIRST_NAMES: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas",
    "Mia", "Levi", "Amelia", "Ezra", "Harper", "Asher", "Evelyn", "James", "Aria", "Leo", "Chloe",
    "Kai", "Nora", "Wyatt", "Hazel", "Owen", "Maya", "Caleb", "Zoe", "Jackson", "Priya", "Arjun",
    "Mei", "Hiro", "Fatima", "Omar", "Lena", "Jonas", "Ingrid", "Diego", "Camila", "Tomás",
    "Aisha", "Kwame", "Siobhan", "Declan", "Sakura", "Ravi", "Elena", "Marco",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Patel",
    "Okafor",
    "Kowalski",
    "Schmidt",
    "Novak",
    "O'Brien",
    "Tanaka",
    "Silva",
    "Larsen",
    "Dubois",
];

/// `(city, province, province_code, country, country_code, zip prefix, weight)`.
pub const PLACES: &[(&str, &str, &str, &str, &str, &str, f64)] = &[
    (
        "Denver",
        "Colorado",
        "CO",
        "United States",
        "US",
        "802",
        9.0,
    ),
    (
        "Seattle",
        "Washington",
        "WA",
        "United States",
        "US",
        "981",
        9.0,
    ),
    (
        "Portland",
        "Oregon",
        "OR",
        "United States",
        "US",
        "972",
        7.0,
    ),
    (
        "Salt Lake City",
        "Utah",
        "UT",
        "United States",
        "US",
        "841",
        6.0,
    ),
    ("Reno", "Nevada", "NV", "United States", "US", "895", 4.0),
    (
        "San Francisco",
        "California",
        "CA",
        "United States",
        "US",
        "941",
        8.0,
    ),
    (
        "Los Angeles",
        "California",
        "CA",
        "United States",
        "US",
        "900",
        7.0,
    ),
    (
        "Boulder",
        "Colorado",
        "CO",
        "United States",
        "US",
        "803",
        4.0,
    ),
    (
        "Bozeman",
        "Montana",
        "MT",
        "United States",
        "US",
        "597",
        3.0,
    ),
    (
        "Asheville",
        "North Carolina",
        "NC",
        "United States",
        "US",
        "288",
        3.0,
    ),
    (
        "Burlington",
        "Vermont",
        "VT",
        "United States",
        "US",
        "054",
        2.5,
    ),
    (
        "Minneapolis",
        "Minnesota",
        "MN",
        "United States",
        "US",
        "554",
        4.0,
    ),
    (
        "Chicago",
        "Illinois",
        "IL",
        "United States",
        "US",
        "606",
        5.0,
    ),
    (
        "New York",
        "New York",
        "NY",
        "United States",
        "US",
        "100",
        6.0,
    ),
    (
        "Boston",
        "Massachusetts",
        "MA",
        "United States",
        "US",
        "021",
        4.0,
    ),
    ("Austin", "Texas", "TX", "United States", "US", "787", 4.0),
    (
        "Flagstaff",
        "Arizona",
        "AZ",
        "United States",
        "US",
        "860",
        2.0,
    ),
    (
        "Anchorage",
        "Alaska",
        "AK",
        "United States",
        "US",
        "995",
        1.0,
    ),
    (
        "Vancouver",
        "British Columbia",
        "BC",
        "Canada",
        "CA",
        "V6B",
        3.0,
    ),
    ("Calgary", "Alberta", "AB", "Canada", "CA", "T2P", 2.0),
    ("Toronto", "Ontario", "ON", "Canada", "CA", "M5V", 2.0),
    (
        "Manchester",
        "England",
        "ENG",
        "United Kingdom",
        "GB",
        "M1",
        1.5,
    ),
    (
        "Edinburgh",
        "Scotland",
        "SCT",
        "United Kingdom",
        "GB",
        "EH1",
        1.0,
    ),
    ("Munich", "Bavaria", "BY", "Germany", "DE", "803", 1.0),
    (
        "Melbourne",
        "Victoria",
        "VIC",
        "Australia",
        "AU",
        "300",
        1.0,
    ),
    (
        "Queenstown",
        "Otago",
        "OTA",
        "New Zealand",
        "NZ",
        "930",
        0.5,
    ),
];

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub place: usize,
    pub created_at: DateTime<FixedOffset>,
    pub accepts_marketing: bool,
    pub tier: Option<&'static str>,
}

pub fn customer_count(scale: u32) -> usize {
    1500 * scale as usize
}

pub fn customer(seed: u64, index: usize) -> Customer {
    let mut rng = Rng::for_entity(seed, Stream::Customer, index as u64);
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let domain = *rng.pick(&["example.com", "example.net", "example.org"]);
    let local: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>()
        .to_lowercase();
    let weights: Vec<(usize, f64)> = PLACES.iter().enumerate().map(|(i, p)| (i, p.6)).collect();
    let place = *rng.weighted(&weights);
    let phone = rng
        .chance(0.4)
        .then(|| format!("+1 775-555-{:04}", 100 + rng.below(100)));
    let tier = *rng.weighted(&[(None, 90.0), (Some("gold"), 7.0), (Some("platinum"), 3.0)]);
    Customer {
        id: 7_200_000_000_000 + index as i64,
        email: format!("{local}{index}@{domain}"),
        first_name: first.into(),
        last_name: last.into(),
        phone,
        place,
        created_at: window_start() - Duration::days(rng.between(1, 900))
            + Duration::seconds(rng.between(0, 86_399)),
        accepts_marketing: rng.chance(0.35),
        tier,
    }
}

// -- orders ------------------------------------------------------------------------------

/// The state an order is in at export time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Unfulfilled,
    PartiallyFulfilled,
    InTransit,
    Delivered,
    Cancelled,
    Refunded,
    ReturnRequested,
    Returned,
}

#[derive(Debug, Clone)]
pub struct LineItem {
    pub id: i64,
    pub product: usize,
    pub variant: usize,
    pub quantity: i64,
}

#[derive(Debug, Clone)]
pub struct Shipment {
    pub id: i64,
    pub line_item_ids: Vec<i64>,
    pub carrier: &'static str,
    pub tracking_number: String,
    pub shipped_at: DateTime<FixedOffset>,
    pub estimated_delivery_at: DateTime<FixedOffset>,
    /// Set once delivered by export time.
    pub delivered_at: Option<DateTime<FixedOffset>>,
    pub delivery_due: DateTime<FixedOffset>,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub index: usize,
    pub id: i64,
    pub number: i64,
    pub customer: usize,
    pub created_at: DateTime<FixedOffset>,
    pub lines: Vec<LineItem>,
    pub shipping_method: &'static str,
    pub shipping_cents: i64,
    pub discount_code: Option<&'static str>,
    pub discount_cents: i64,
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub state: OrderState,
    pub cancelled_at: Option<DateTime<FixedOffset>>,
    pub cancel_reason: Option<&'static str>,
    pub shipments: Vec<Shipment>,
    pub refund: Option<(DateTime<FixedOffset>, i64, Vec<i64>)>,
    pub return_request: Option<(DateTime<FixedOffset>, &'static str, bool)>,
    pub updated_at: DateTime<FixedOffset>,
}

impl Order {
    pub fn name(&self) -> String {
        format!("#{}", self.number)
    }
    pub fn total_cents(&self) -> i64 {
        self.subtotal_cents - self.discount_cents + self.shipping_cents + self.tax_cents
    }
    pub fn delivered_at(&self) -> Option<DateTime<FixedOffset>> {
        self.shipments.iter().filter_map(|s| s.delivered_at).max()
    }
}

/// The order timeline of one scale: how many orders each day.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// `cumulative[d]` = orders placed before day `d` ends.
    cumulative: Vec<usize>,
}

impl Timeline {
    pub fn new(scale: u32) -> Self {
        let counts = per_day_counts(3200 * scale as usize, 4.0);
        let mut cumulative = Vec::with_capacity(counts.len());
        let mut sum = 0;
        for c in counts {
            sum += c;
            cumulative.push(sum);
        }
        Self { cumulative }
    }

    pub fn order_count(&self) -> usize {
        *self.cumulative.last().unwrap_or(&0)
    }

    pub fn day_of(&self, order: usize) -> i64 {
        self.cumulative.partition_point(|&c| c <= order) as i64
    }

    /// Orders placed strictly before day `day` (clamped to the window).
    pub fn orders_before_day(&self, day: i64) -> usize {
        if day <= 0 {
            0
        } else {
            self.cumulative[(day as usize - 1).min(self.cumulative.len() - 1)]
        }
    }
}

pub const CARRIERS_US: &[(&str, f64)] = &[("UPS", 45.0), ("USPS", 35.0), ("FedEx", 20.0)];

pub fn tracking_url(carrier: &str, number: &str) -> String {
    match carrier {
        "UPS" => format!("https://www.ups.com/track?tracknum={number}"),
        "USPS" => format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
        "FedEx" => format!("https://www.fedex.com/fedextrack/?trknbr={number}"),
        _ => format!("https://www.dhl.com/en/express/tracking.html?AWB={number}"),
    }
}

fn tracking_number(rng: &mut Rng, carrier: &str) -> String {
    let digits = |rng: &mut Rng, n: usize| {
        (0..n)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect::<String>()
    };
    match carrier {
        "UPS" => format!(
            "1Z{}{}",
            (0..6)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect::<String>(),
            digits(rng, 10)
        ),
        "USPS" => format!("9400{}", digits(rng, 18)),
        "FedEx" => digits(rng, 12),
        _ => digits(rng, 10),
    }
}

/// Builds order `index` with everything that happened to it up to export time.
pub fn order(seed: u64, scale: u32, timeline: &Timeline, index: usize) -> Order {
    let mut rng = Rng::for_entity(seed, Stream::Order, index as u64);
    let day = timeline.day_of(index);
    let created_at = time_on_day(&mut rng, day);
    let now = exported_at();
    let customer_index = rng.skewed(customer_count(scale), 1.6);
    let cust = customer(seed, customer_index);
    let international = PLACES[cust.place].4 != "US";
    let n_lines = *rng.weighted(&[(1usize, 55.0), (2, 28.0), (3, 12.0), (4, 5.0)]);
    let products = catalog::product_count(scale);
    let mut lines = Vec::with_capacity(n_lines);
    let mut subtotal = 0;
    for k in 0..n_lines {
        let p = rng.skewed(products, 1.8);
        let prod = catalog::product(seed, p);
        let v = rng.below(prod.variants.len());
        let quantity = if rng.chance(0.9) { 1 } else { 2 };
        subtotal += prod.variants[v].price_cents * quantity;
        lines.push(LineItem {
            id: 14_000_000_000_000 + index as i64 * 10 + k as i64,
            product: p,
            variant: v,
            quantity,
        });
    }
    let shipping_method = if international {
        "DHL Express International"
    } else {
        *rng.weighted(&[("Standard", 70.0), ("Expedited", 22.0), ("Overnight", 8.0)])
    };
    let shipping_cents = match shipping_method {
        "Standard" if subtotal >= 7500 => 0,
        "Standard" => 695,
        "Expedited" => 1495,
        "Overnight" => 2995,
        _ => 2495,
    };
    let discount_code = if day == SALE_DAY || day == SALE_DAY + 1 {
        Some("LABORDAY25")
    } else if rng.chance(0.12) {
        Some(*rng.pick(&["WELCOME10", "TRAIL15", "REWARDS20"]))
    } else {
        None
    };
    let discount_cents = match discount_code {
        Some("LABORDAY25") => subtotal / 4,
        Some("WELCOME10") => subtotal / 10,
        Some("TRAIL15") => subtotal * 15 / 100,
        Some(_) => subtotal / 5,
        None => 0,
    };
    let tax_cents = if international {
        0
    } else {
        (subtotal - discount_cents) * 75 / 1000
    };
    let mut order = Order {
        index,
        id: 6_100_000_000_000 + index as i64,
        number: 1001 + index as i64,
        customer: customer_index,
        created_at,
        lines,
        shipping_method,
        shipping_cents,
        discount_code,
        discount_cents,
        subtotal_cents: subtotal,
        tax_cents,
        state: OrderState::Unfulfilled,
        cancelled_at: None,
        cancel_reason: None,
        shipments: Vec::new(),
        refund: None,
        return_request: None,
        updated_at: created_at,
    };

    if rng.chance(0.04) {
        let at = created_at + Duration::minutes(rng.between(10, 1200));
        if at < now {
            order.state = OrderState::Cancelled;
            order.cancelled_at = Some(at);
            order.cancel_reason = Some(*rng.weighted(&[
                ("customer", 70.0),
                ("inventory", 15.0),
                ("fraud", 5.0),
                ("declined", 10.0),
            ]));
            order.updated_at = at;
            return order;
        }
    }
    // Warehouse time: longer around the sale, when the backlog builds.
    let handling_hours = if (SALE_DAY..=SALE_DAY + 3).contains(&day) {
        rng.between(30, 96)
    } else {
        rng.between(6, 50)
    };
    let shipped_at = created_at + Duration::hours(handling_hours);
    if shipped_at >= now {
        return order;
    }
    let nominal_days = match shipping_method {
        "Standard" => rng.between(3, 7),
        "Expedited" => rng.between(2, 3),
        "Overnight" => 1,
        _ => rng.between(7, 14),
    };
    let late_days = if rng.chance(0.1) {
        rng.between(2, 5)
    } else {
        0
    };
    let split = order.lines.len() > 1 && rng.chance(0.15);
    let groups: Vec<Vec<i64>> = if split {
        let (first, rest) = order.lines.split_at(1);
        vec![
            first.iter().map(|l| l.id).collect(),
            rest.iter().map(|l| l.id).collect(),
        ]
    } else {
        vec![order.lines.iter().map(|l| l.id).collect()]
    };
    let carrier = if international {
        "DHL Express"
    } else {
        *rng.weighted(CARRIERS_US)
    };
    for (g, line_item_ids) in groups.into_iter().enumerate() {
        let ship = shipped_at + Duration::hours(g as i64 * rng.between(24, 120));
        if ship >= now {
            continue;
        }
        let eta = ship + Duration::days(nominal_days);
        let due =
            ship + Duration::days(nominal_days + late_days) + Duration::hours(rng.between(-6, 6));
        order.shipments.push(Shipment {
            id: 5_400_000_000_000 + index as i64 * 10 + g as i64,
            line_item_ids,
            carrier,
            tracking_number: tracking_number(&mut rng, carrier),
            shipped_at: ship,
            estimated_delivery_at: eta,
            delivered_at: (due < now).then_some(due),
            delivery_due: due,
        });
    }
    let all_shipped = order.shipments.len() == if split { 2 } else { 1 };
    let all_delivered = all_shipped && order.shipments.iter().all(|s| s.delivered_at.is_some());
    order.state = if !all_shipped {
        OrderState::PartiallyFulfilled
    } else if !all_delivered {
        OrderState::InTransit
    } else {
        OrderState::Delivered
    };
    order.updated_at = order
        .shipments
        .iter()
        .map(|s| s.delivered_at.unwrap_or(s.shipped_at))
        .max()
        .unwrap_or(created_at);
    if order.state != OrderState::Delivered {
        return order;
    }
    let delivered = order
        .delivered_at()
        .expect("delivered orders have a delivery date");
    let after = rng.unit();
    if after < 0.08 {
        let requested =
            delivered + Duration::days(rng.between(1, 25)) + Duration::hours(rng.between(0, 23));
        if requested < now {
            let reason = *rng.weighted(&[
                ("SIZE_TOO_SMALL", 30.0),
                ("SIZE_TOO_LARGE", 25.0),
                ("UNWANTED", 15.0),
                ("NOT_AS_DESCRIBED", 10.0),
                ("DEFECTIVE", 8.0),
                ("STYLE", 12.0),
            ]);
            let exchange = reason.starts_with("SIZE") && rng.chance(0.4);
            order.return_request = Some((requested, reason, exchange));
            order.state = OrderState::ReturnRequested;
            order.updated_at = requested;
            let refunded_at = requested + Duration::days(rng.between(6, 14));
            if refunded_at < now {
                order.state = OrderState::Returned;
                order.updated_at = refunded_at;
                if !exchange {
                    let line = &order.lines[0];
                    let prod = catalog::product(seed, line.product);
                    let amount = prod.variants[line.variant].price_cents * line.quantity - 795;
                    order.refund = Some((refunded_at, amount.max(0), vec![line.id]));
                }
            }
        }
    } else if after < 0.11 {
        // Damaged or missing item: refunded without a return.
        let at = delivered + Duration::days(rng.between(1, 6));
        if at < now {
            order.state = OrderState::Refunded;
            order.refund = Some((
                at,
                order.total_cents(),
                order.lines.iter().map(|l| l.id).collect(),
            ));
            order.updated_at = at;
        }
    }
    order
}

/// The product and variant behind a line item.
pub fn line_product(seed: u64, line: &LineItem) -> Product {
    catalog::product(seed, line.product)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_sum_exactly_and_peak_on_the_sale() {
        let counts = per_day_counts(10_000, 4.0);
        assert_eq!(counts.iter().sum::<usize>(), 10_000);
        let max_day = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .map(|(d, _)| d)
            .unwrap();
        assert_eq!(max_day as i64, SALE_DAY);
    }

    #[test]
    fn timeline_is_monotonic() {
        let timeline = Timeline::new(1);
        let mut last = window_start();
        for i in (0..timeline.order_count()).step_by(97) {
            let o = order(7, 1, &timeline, i);
            assert!(
                o.created_at >= last - Duration::days(1),
                "order {i} goes back in time"
            );
            last = o.created_at;
            assert!(o.updated_at <= exported_at());
        }
        assert_eq!(timeline.orders_before_day(0), 0);
        assert_eq!(
            timeline.orders_before_day(WINDOW_DAYS + 5),
            timeline.order_count()
        );
    }
}
