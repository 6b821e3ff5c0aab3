//! Fixed catalogues the generator draws from: merchants (with Plaid-style categories,
//! channels and places) and sandbox institution names. Plain data, kept apart from the logic.

/// A merchant the simulated bank's customers spend at (or get paid by).
pub struct Merchant {
    /// The raw bank description (`name`).
    pub description: &'static str,
    pub merchant_name: Option<&'static str>,
    pub website: Option<&'static str>,
    pub primary: &'static str,
    pub detailed: &'static str,
    /// `online`, `in store` or `other`.
    pub channel: &'static str,
    pub city: Option<(&'static str, &'static str, &'static str)>,
    /// Amount range in cents; negative for money coming in.
    pub cents: (i64, i64),
    /// Relative frequency.
    pub weight: u32,
}

#[allow(clippy::too_many_arguments)] // a table row constructor: one argument per column
const fn m(
    description: &'static str,
    merchant_name: Option<&'static str>,
    website: Option<&'static str>,
    primary: &'static str,
    detailed: &'static str,
    channel: &'static str,
    city: Option<(&'static str, &'static str, &'static str)>,
    cents: (i64, i64),
    weight: u32,
) -> Merchant {
    Merchant {
        description,
        merchant_name,
        website,
        primary,
        detailed,
        channel,
        city,
        cents,
        weight,
    }
}

const SF: Option<(&str, &str, &str)> = Some(("San Francisco", "CA", "94103"));
const NYC: Option<(&str, &str, &str)> = Some(("New York", "NY", "10001"));
const POWAY: Option<(&str, &str, &str)> = Some(("Poway", "CA", "92064"));

pub const MERCHANTS: &[Merchant] = &[
    m(
        "PURCHASE WM SUPERCENTER #1700",
        Some("Walmart"),
        Some("walmart.com"),
        "GENERAL_MERCHANDISE",
        "GENERAL_MERCHANDISE_SUPERSTORES",
        "in store",
        POWAY,
        (500, 25_000),
        8,
    ),
    m(
        "STARBUCKS STORE 08125",
        Some("Starbucks"),
        Some("starbucks.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_COFFEE",
        "in store",
        SF,
        (350, 1_500),
        12,
    ),
    m(
        "Dd Doordash Burgerkin",
        Some("Burger King"),
        Some("burgerking.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_FAST_FOOD",
        "online",
        None,
        (900, 4_500),
        8,
    ),
    m(
        "UBER 063015 SF**POOL**",
        Some("Uber"),
        Some("uber.com"),
        "TRANSPORTATION",
        "TRANSPORTATION_TAXIS_AND_RIDE_SHARES",
        "online",
        None,
        (600, 6_000),
        8,
    ),
    m(
        "AMAZON MKTPL*2K4",
        Some("Amazon"),
        Some("amazon.com"),
        "GENERAL_MERCHANDISE",
        "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES",
        "online",
        None,
        (999, 30_000),
        10,
    ),
    m(
        "TRADER JOE S #236",
        Some("Trader Joe's"),
        Some("traderjoes.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_GROCERIES",
        "in store",
        NYC,
        (1_500, 18_000),
        9,
    ),
    m(
        "SHELL OIL 57444",
        Some("Shell"),
        Some("shell.com"),
        "TRANSPORTATION",
        "TRANSPORTATION_GAS",
        "in store",
        SF,
        (2_000, 9_000),
        6,
    ),
    m(
        "SPOTIFY USA",
        Some("Spotify"),
        Some("spotify.com"),
        "ENTERTAINMENT",
        "ENTERTAINMENT_MUSIC_AND_AUDIO",
        "online",
        None,
        (1_099, 1_699),
        2,
    ),
    m(
        "NETFLIX.COM",
        Some("Netflix"),
        Some("netflix.com"),
        "ENTERTAINMENT",
        "ENTERTAINMENT_TV_AND_MOVIES",
        "online",
        None,
        (1_549, 2_299),
        2,
    ),
    m(
        "SQ *BLUE BOTTLE COFFEE",
        Some("Blue Bottle Coffee"),
        Some("bluebottlecoffee.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_COFFEE",
        "in store",
        SF,
        (450, 1_200),
        5,
    ),
    m(
        "CHIPOTLE 1249",
        Some("Chipotle"),
        Some("chipotle.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_FAST_FOOD",
        "in store",
        NYC,
        (950, 2_800),
        6,
    ),
    m(
        "UNITED AIRLINES 0162",
        Some("United Airlines"),
        Some("united.com"),
        "TRAVEL",
        "TRAVEL_FLIGHTS",
        "online",
        None,
        (12_000, 85_000),
        1,
    ),
    m(
        "PG&E WEB ONLINE",
        Some("PG&E"),
        Some("pge.com"),
        "RENT_AND_UTILITIES",
        "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY",
        "online",
        None,
        (6_000, 22_000),
        2,
    ),
    m(
        "COMCAST CABLE COMM",
        Some("Comcast"),
        Some("xfinity.com"),
        "RENT_AND_UTILITIES",
        "RENT_AND_UTILITIES_INTERNET_AND_CABLE",
        "online",
        None,
        (7_000, 12_000),
        1,
    ),
    m(
        "CVS/PHARMACY #0817",
        Some("CVS"),
        Some("cvs.com"),
        "MEDICAL",
        "MEDICAL_PHARMACIES_AND_SUPPLEMENTS",
        "in store",
        NYC,
        (400, 6_000),
        4,
    ),
    m(
        "ATM WITHDRAWAL 0023",
        None,
        None,
        "TRANSFER_OUT",
        "TRANSFER_OUT_WITHDRAWAL",
        "other",
        SF,
        (2_000, 20_000),
        2,
    ),
    m(
        "ACH ELECTRONIC CREDIT GUSTO PAY 123456",
        Some("Gusto"),
        Some("gusto.com"),
        "INCOME",
        "INCOME_WAGES",
        "other",
        None,
        (-450_000, -180_000),
        2,
    ),
    m(
        "INTRST PYMNT",
        None,
        None,
        "INCOME",
        "INCOME_INTEREST_EARNED",
        "other",
        None,
        (-900, -100),
        1,
    ),
    m(
        "VENMO PAYMENT 1023",
        Some("Venmo"),
        Some("venmo.com"),
        "TRANSFER_OUT",
        "TRANSFER_OUT_ACCOUNT_TRANSFER",
        "online",
        None,
        (1_000, 15_000),
        3,
    ),
    m(
        "McDonald's",
        Some("McDonald's"),
        Some("mcdonalds.com"),
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_FAST_FOOD",
        "in store",
        POWAY,
        (300, 1_800),
        6,
    ),
];

pub fn total_weight() -> u32 {
    MERCHANTS.iter().map(|m| m.weight).sum()
}

/// Capital One, the institution whose balances Plaid cannot fetch in real time.
const CAPITAL_ONE: &str = "ins_128026";

/// Whether the institution returns real-time balances: all but Capital One, the one the spec
/// names (`AccountBalance.last_updated_datetime`).
pub fn realtime_balances(institution_id: &str) -> bool {
    institution_id != CAPITAL_ONE
}

/// Names of Plaid's sandbox institutions; other `ins_…` ids get a generic name.
pub fn institution_name(institution_id: &str) -> String {
    match institution_id {
        "ins_109508" => "First Platypus Bank",
        "ins_109509" => "First Gingham Credit Union",
        "ins_109510" => "Tattersall Federal Credit Union",
        "ins_109511" => "Tartan Bank",
        "ins_109512" => "Houndstooth Bank",
        "ins_43" => "Platypus OAuth Bank",
        "ins_3" => "Chase",
        "ins_4" => "Wells Fargo",
        "ins_5" => "Citi",
        "ins_1" => "Bank of America",
        "ins_117650" => "Royal Bank of Plaid",
        "ins_116834" => "Flexible Platypus Open Banking",
        CAPITAL_ONE => "Capital One",
        other => return format!("Sim Bank {other}"),
    }
    .to_owned()
}

/// Where an institution is, by region as Plaid's consent rules go: its consent expiry is
/// announced by PENDING_EXPIRATION in Europe (the UK included) and by PENDING_DISCONNECT
/// (`INSTITUTION_TOKEN_EXPIRATION`) in the US and Canada.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// US or Canada.
    NorthAmerica,
    /// The UK or the EU.
    Europe,
}

/// The simulator's European institutions (sandbox UK banks); every other id is North American.
pub fn institution_region(institution_id: &str) -> Region {
    match institution_id {
        "ins_117650" | "ins_116834" => Region::Europe,
        _ => Region::NorthAmerica,
    }
}

/// Whether `institution_id` has the shape of a Plaid institution id (`ins_` and digits).
pub fn is_valid_institution_id(institution_id: &str) -> bool {
    institution_id
        .strip_prefix("ins_")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}
