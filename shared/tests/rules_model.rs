//! Property test of the rules and the write conditions together, without I/O: random sequences of
//! activations (two users, shared hardware ids), deactivations and re-imports run through the real
//! `rules` and `store::write` against an in-memory item map evaluated with `write::apply` (the SQLite
//! store's evaluator), and are compared with a plain model of SPEC §3. Counters, transfers, seats and
//! every answer must match the model after every step.

use license_api::ids::{CompanyId, HardwareId, ProductCode, Username};
use license_api::model::{Company, Device, License, ProductDoc, Seat};
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::request::{LicenseRequest, Params};
use license_api::rules::{self, LicenseContext, Transport};
use license_api::store::write::{self, Image, Item, Refused, Write};
use license_api::time::Timestamp;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const USERS: [&str; 2] = ["a@example.com", "b@example.com"];

#[derive(Clone, Debug)]
enum Op {
    Activate {
        user: usize,
        hw: u8,
    },
    Deactivate {
        user: usize,
        hw: u8,
    },
    /// A catalog re-import changing the license's limits (counters are kept).
    Reimport {
        max_activations: i64,
        max_transfers: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..6u8).prop_map(|(user, hw)| Op::Activate { user, hw }),
        3 => (0..2usize, 0..6u8).prop_map(|(user, hw)| Op::Deactivate { user, hw }),
        1 => (1..5i64, -1..4i64).prop_map(|(max_activations, max_transfers)| Op::Reimport { max_activations, max_transfers }),
    ]
}

/// The store: items by key, changed only through `write::apply`.
#[derive(Default)]
struct Mem(HashMap<String, Image>);

impl Mem {
    fn get(&self, item: &Item) -> Option<Image> {
        self.0.get(&format!("{item:?}")).cloned()
    }
    fn apply(&mut self, w: &Write) -> Result<(), Refused> {
        let mut images: Vec<_> = w.items.iter().map(|i| self.get(&i.item)).collect();
        write::apply(w, &mut images)?;
        for (i, image) in w.items.iter().zip(images) {
            let key = format!("{:?}", i.item);
            match image {
                Some(image) => self.0.insert(key, image),
                None => self.0.remove(&key),
            };
        }
        Ok(())
    }
    fn released(&self) -> Vec<HardwareId> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter(|(_, i)| matches!(i, Image::Marker))
            .map(|(k, _)| {
                let hw = k.rsplit("HardwareId(\"").next().unwrap().trim_end_matches("\"))");
                HardwareId::parse(hw).unwrap()
            })
            .collect();
        v.sort();
        v
    }
}

/// SPEC §3 as plainly as possible.
struct Model {
    max: i64,
    max_transfers: i64,
    active: BTreeMap<u8, usize>,
    released: BTreeSet<u8>,
    transfers: i64,
    seats: [i64; 2],
}

const SEAT_MAX: i64 = 2;

impl Model {
    fn activate(&mut self, user: usize, hw: u8) -> &'static str {
        if self.active.contains_key(&hw) {
            return "license_device_exists";
        }
        if self.active.len() as i64 >= self.max {
            return "license_activated_max_times";
        }
        if self.seats[user] >= SEAT_MAX {
            return "license_user_activated_max_times";
        }
        if !self.released.remove(&hw) {
            if let Some(&first) = self.released.iter().next() {
                let reached = match self.max_transfers {
                    0 => false,
                    n if n < 0 => true,
                    n => self.transfers >= n,
                };
                if reached {
                    return "license_transferred_max_times";
                }
                self.released.remove(&first);
                self.transfers += 1;
            }
        }
        self.active.insert(hw, user);
        self.seats[user] += 1;
        "ok"
    }

    fn deactivate(&mut self, hw: u8) -> &'static str {
        let Some(owner) = self.active.remove(&hw) else {
            return if self.active.is_empty() {
                "license_not_active"
            } else {
                "device_not_found"
            };
        };
        self.seats[owner] -= 1;
        self.released.insert(hw);
        "ok"
    }
}

fn hw_name(hw: u8) -> String {
    // Names sort like their numbers, so "the smallest released hardware id" is the model's first.
    format!("hw-{hw}")
}

fn request(user: usize, hw: u8) -> LicenseRequest {
    let body = serde_json::json!({
        "product": "up", "hardware_id": hw_name(hw), "username": USERS[user], "password": "x"
    });
    LicenseRequest::parse(&Params::from_json(body.to_string().as_bytes()).unwrap()).unwrap()
}

struct World {
    mem: Mem,
    addr: LicenseAddr,
    now: Timestamp,
}

impl World {
    fn new() -> Self {
        let license = License {
            max_activations: 2,
            ..License::new(
                1,
                CompanyId::parse("c").unwrap(),
                ProductCode::parse("up").unwrap(),
                None,
            )
        };
        let addr = LicenseAddr::of(&license);
        let mut mem = Mem::default();
        mem.0.insert(
            format!("{:?}", Item::License(addr.clone())),
            Image::License(Box::new(license)),
        );
        for u in USERS {
            let seat = Seat {
                user: Username::parse(u).unwrap(),
                max_activations: SEAT_MAX,
                allow_unlimited_activations: false,
                total_activations: 0,
            };
            let user = seat.user.clone();
            mem.0
                .insert(format!("{:?}", Item::Seat(addr.clone(), user)), Image::Seat(seat));
        }
        Self {
            mem,
            addr,
            now: Timestamp::now(),
        }
    }

    fn license(&self) -> License {
        match self.mem.get(&Item::License(self.addr.clone())) {
            Some(Image::License(l)) => *l,
            other => panic!("license missing: {other:?}"),
        }
    }

    fn seat(&self, user: usize) -> Seat {
        match self
            .mem
            .get(&Item::Seat(self.addr.clone(), Username::parse(USERS[user]).unwrap()))
        {
            Some(Image::Seat(s)) => s,
            other => panic!("seat missing: {other:?}"),
        }
    }

    fn device(&self, hw: &HardwareId) -> Option<Device> {
        match self.mem.get(&Item::Device(self.addr.clone(), hw.clone())) {
            Some(Image::Device(d)) => Some(*d),
            _ => None,
        }
    }

    fn context(&self, user: usize, hw: &HardwareId) -> LicenseContext {
        LicenseContext {
            seat: Some(self.seat(user)),
            device: self.device(hw),
            released_here: self.mem.get(&Item::Released(self.addr.clone(), hw.clone())).is_some(),
            ..LicenseContext::new(ProductDoc::default(), Company::default(), self.license())
        }
    }

    fn activate(&mut self, user: usize, hw: u8) -> String {
        let req = request(user, hw);
        let mut ctx = self.context(user, &req.hardware_id);
        if rules::needs_transfer_source(&ctx) {
            ctx.transfer_source = self.mem.released().first().cloned();
        }
        let write =
            rules::plan_activation(&ctx, &req, self.now, Transport::Online).map(|p| p.write(&WriteToken::new()));
        self.answer(write)
    }

    /// The rules' error code, or "ok" once the planned write applied.
    fn answer(&mut self, write: Result<Write, license_api::error::ApiError>) -> String {
        match write {
            Err(e) => e.code().to_owned(),
            Ok(write) => {
                self.mem
                    .apply(&write)
                    .expect("a plan made on the current state applies");
                "ok".into()
            }
        }
    }

    fn deactivate(&mut self, user: usize, hw: u8) -> String {
        let req = request(user, hw);
        let ctx = self.context(user, &req.hardware_id);
        let write = rules::plan_deactivation(&ctx, &req.hardware_id, self.now).map(|p| p.write(&WriteToken::new()));
        self.answer(write)
    }

    fn reimport(&mut self, max_activations: i64, max_transfers: i64) {
        let mut l = self.license();
        l.max_activations = max_activations;
        l.max_transfers = max_transfers;
        self.mem.0.insert(
            format!("{:?}", Item::License(self.addr.clone())),
            Image::License(Box::new(l)),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn rules_and_writes_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        let mut model = Model { max: 2, max_transfers: 0, active: BTreeMap::new(), released: BTreeSet::new(), transfers: 0, seats: [0, 0] };
        for op in ops {
            match op {
                Op::Activate { user, hw } => prop_assert_eq!(world.activate(user, hw), model.activate(user, hw), "{:?}", op),
                Op::Deactivate { user, hw } => prop_assert_eq!(world.deactivate(user, hw), model.deactivate(hw), "{:?}", op),
                Op::Reimport { max_activations, max_transfers } => {
                    world.reimport(max_activations, max_transfers);
                    model.max = max_activations;
                    model.max_transfers = max_transfers;
                }
            }
            let l = world.license();
            prop_assert_eq!(l.times_activated, model.active.len() as i64);
            prop_assert_eq!(l.transfer_count, model.transfers);
            prop_assert_eq!(l.released_count, model.released.len() as i64);
            let released: Vec<_> = model.released.iter().map(|h| HardwareId::parse(&hw_name(*h)).unwrap()).collect();
            prop_assert_eq!(world.mem.released(), released);
            for u in 0..2 {
                prop_assert_eq!(world.seat(u).total_activations, model.seats[u]);
            }
        }
    }
}
