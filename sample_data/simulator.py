"""Embedded sample data: a small home-improvement shop and its search logs.

`mmse run` and the end-to-end test need data without the network or the
licensed benchmark beside the checkout, so this module writes a synthetic
equivalent in the benchmark's exact formats (see the README of
../shared/data/homedepot): a catalogue, sharded gzip search logs and graded
judgments for held-out queries that never occur in the logs.

The world is built so that the multi-stage signals mean something:
  * Products come from templates (brand, product type, attributes such as
    voltage, size, colour, pack count), so titles look like real ones.
  * Queries are written the way people type them: a product type's everyday
    name (often one no title contains, e.g. "fridge", "rattle can"), a few
    of a product's attributes, sometimes its brand, lower case, now and then
    misspelled. Their popularity is Zipf-like.
  * Every (query, item) pair has a relevance grade derived from attribute
    overlap, as the mean of three noisy raters (1.0, 1.33, ..., 3.0), like
    the benchmark's human grades.
  * A production-like ranker (grade plus noise plus a few injected
    irrelevant items) fills each page; a position-based click model turns
    grades into clicks, carts and orders, so ordered > clicked > shown holds
    on average but not item by item.
  * About 0.5% of the rows carry the dirt real logs have: empty queries,
    unknown item ids, orders without a click, exact duplicate rows.

Only the standard library and numpy are used, so `mmse simulate` takes
seconds and imports no TensorFlow. Output is byte-identical for a seed.
"""
import csv
import dataclasses
import gzip
import io
import logging
import os
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from contracts import features
from contracts import text as text_rule

# --- Product templates ----------------------------------------------------
# A value is "Title text|how people type it|another way"; without "|" the
# typed form is derived from the title (`_typed`). An empty value means the
# item lacks the attribute. Values are compared across product types by
# their first typed form, so "in Chrome" (a faucet) and "Chrome" (a towel
# bar) are the same colour.

_COLOURS_METAL = [
    "in Chrome", "in Brushed Nickel|brushed nickel|nickel",
    "in Matte Black|matte black|black",
    "in Oil-Rubbed Bronze|oil rubbed bronze|bronze"]
_COLOURS_APPLIANCE = [
    "in Stainless Steel|stainless steel|stainless",
    "in Black Stainless Steel|black stainless", "in White"]
_VOLTAGE_TOOL = ["12V MAX|12v|12 volt", "18V|18v|18 volt",
                 "20V MAX|20v|20v max|20 volt"]
_POWER_TOOL_BRANDS = ["DEWALT", "Milwaukee", "RYOBI", "Makita",
                      "BLACK+DECKER|black and decker|black decker"]
_PLUMBING_BRANDS = ["Delta", "Moen", "Glacier Bay", "Pfister", "KOHLER"]
_APPLIANCE_BRANDS = ["Samsung", "LG", "Whirlpool", "GE", "Frigidaire"]
_LOCK_BRANDS = ["Kwikset", "Schlage", "Defiant"]
_LOCK_COLOURS = ["in Satin Nickel|satin nickel|nickel",
                 "in Venetian Bronze|venetian bronze|bronze",
                 "in Matte Black|matte black|black",
                 "in Polished Brass|polished brass|brass"]


@dataclasses.dataclass(frozen=True)
class ProductType:
  """A kind of product: how its titles are built and how people ask for it.

  `slots` are (attribute name, "pre" or "post" the product name, values);
  `nouns` are the everyday names, most common first.
  """
  name: str
  category: str
  nouns: Tuple[str, ...]
  brands: Tuple[str, ...]
  slots: Tuple[Tuple[str, str, Tuple[str, ...]], ...]
  price_range: Tuple[float, float]
  unbranded_share: float = 0.01


def _type(name, category, nouns, brands, slots, price_range,
          unbranded_share=0.01):
  return ProductType(
      name, category, tuple(nouns), tuple(brands),
      tuple((slot, where, tuple(values)) for slot, where, values in slots),
      price_range, unbranded_share)


PRODUCT_TYPES = (
    # Tools.
    _type("Cordless Drill/Driver Kit", "Tools",
          ["cordless drill", "drill", "drill driver", "power drill"],
          _POWER_TOOL_BRANDS,
          [("voltage", "pre", _VOLTAGE_TOOL),
           ("feature", "pre", ["Brushless", "Compact", ""]),
           ("chuck", "pre", ["1/2 in.|1/2 in|1/2 inch", "3/8 in.|3/8 in"])],
          (59, 249)),
    _type("Cordless Impact Driver", "Tools",
          ["impact driver", "impact drill", "cordless impact driver"],
          _POWER_TOOL_BRANDS,
          [("voltage", "pre", _VOLTAGE_TOOL),
           ("feature", "pre", ["Brushless", "Compact", ""]),
           ("kit", "post", ["Kit with Battery and Charger|kit|with battery",
                            "(Tool-Only)|tool only"])],
          (79, 279)),
    _type("Circular Saw", "Tools", ["circular saw", "skil saw", "circ saw"],
          _POWER_TOOL_BRANDS[:4] + ["SKIL"],
          [("voltage", "pre", _VOLTAGE_TOOL + ["15 Amp Corded|corded|15 amp"]),
           ("blade", "pre", ["7-1/4 in.|7 1/4|7-1/4 in",
                             "6-1/2 in.|6 1/2|6-1/2 in"])],
          (49, 229)),
    _type("Reciprocating Saw", "Tools",
          ["reciprocating saw", "sawzall", "recip saw"],
          _POWER_TOOL_BRANDS[:4] + ["SKIL"],
          [("voltage", "pre", _VOLTAGE_TOOL + ["12 Amp Corded|corded|12 amp"]),
           ("feature", "pre", ["Brushless", "Compact", "Variable Speed", ""])],
          (59, 249)),
    _type("Drill Bit Set", "Tools",
          ["drill bit set", "drill bits", "drill bit"],
          _POWER_TOOL_BRANDS[:3] + ["Diablo"],
          [("material", "pre", ["Titanium", "Cobalt", "Black Oxide"]),
           ("count", "post", ["(14-Piece)", "(21-Piece)", "(29-Piece)"])],
          (9, 79)),
    _type("Rolling Tool Cabinet", "Tools",
          ["tool chest", "tool box", "rolling tool cabinet", "tool cabinet"],
          ["Husky", "Milwaukee", "Craftsman", "DEWALT"],
          [("width", "pre", ["36 in.|36 in", "46 in.|46 in", "52 in.|52 in"]),
           ("drawers", "pre", ["9-Drawer", "12-Drawer", "15-Drawer"]),
           ("colour", "post", ["in Gloss Red|red",
                               "in Matte Black|matte black|black"])],
          (299, 999)),
    _type("Wet/Dry Shop Vacuum", "Tools",
          ["shop vac", "wet dry vac", "shop vacuum"],
          ["RIDGID", "Shop-Vac|shop vac|shopvac", "Craftsman", "DEWALT"],
          [("capacity", "pre", ["5 Gal.|5 gal|5 gallon",
                                "12 Gal.|12 gal|12 gallon",
                                "16 Gal.|16 gal|16 gallon"]),
           ("power", "pre", ["5.0 Peak HP|5 hp", "6.0 Peak HP|6 hp"])],
          (59, 199)),
    # Lighting & Ceiling Fans.
    _type("LED Light Bulb", "Lighting & Ceiling Fans",
          ["led bulb", "light bulb", "led light bulbs", "bulbs"],
          ["Philips", "Cree", "EcoSmart", "Feit Electric", "GE"],
          [("wattage", "pre", ["40-Watt Equivalent|40 watt|40w",
                               "60-Watt Equivalent|60 watt|60w",
                               "100-Watt Equivalent|100 watt|100w"]),
           ("shape", "pre", ["A19", "BR30", "PAR38"]),
           ("light", "pre", ["Soft White", "Daylight", "Bright White"]),
           ("pack", "post", ["(4-Pack)", "(8-Pack)", "(16-Pack)", ""])],
          (4, 39)),
    _type("Ceiling Fan", "Lighting & Ceiling Fans",
          ["ceiling fan", "fan", "ceiling fans"],
          ["Hampton Bay", "Hunter", "Home Decorators Collection",
           "Harbor Breeze"],
          [("width", "pre", ["44 in.|44 in|44 inch", "52 in.|52 in|52 inch",
                             "60 in.|60 in|60 inch"]),
           ("feature", "pre", ["LED Indoor|indoor", "Indoor/Outdoor|outdoor"]),
           ("colour", "pre", [c[3:] for c in _COLOURS_METAL[1:]] + ["White"]),
           ("light", "post", ["with Light Kit|with light|light kit", ""])],
          (49, 299)),
    _type("Flush Mount Ceiling Light", "Lighting & Ceiling Fans",
          ["flush mount light", "ceiling light", "flush mount"],
          ["Hampton Bay", "Commercial Electric", "Home Decorators Collection",
           "Progress Lighting"],
          [("width", "pre", ["11 in.|11 in", "13 in.|13 in", "15 in.|15 in"]),
           ("lights", "pre", ["LED", "2-Light", "3-Light"]),
           ("colour", "post", _COLOURS_METAL[1:] + ["in White"])],
          (19, 129)),
    _type("Outdoor Wall Lantern Sconce", "Lighting & Ceiling Fans",
          ["outdoor light", "porch light", "wall lantern",
           "outdoor wall light"],
          ["Hampton Bay", "Progress Lighting", "Globe Electric",
           "Home Decorators Collection"],
          [("lights", "pre", ["1-Light", "2-Light"]),
           ("feature", "pre", ["Dusk to Dawn", "Motion Sensing|motion sensor",
                               ""]),
           ("colour", "post", ["in Matte Black|matte black|black",
                               "in Oil-Rubbed Bronze|oil rubbed bronze|bronze",
                               "in Textured Black|textured black"])],
          (24, 149)),
    _type("LED Shop Light", "Lighting & Ceiling Fans",
          ["shop light", "led shop light", "garage light"],
          ["Commercial Electric", "Lithonia Lighting", "Feit Electric"],
          [("length", "pre", ["4 ft.|4 ft|4 foot", "8 ft.|8 ft|8 foot"]),
           ("lumens", "pre", ["4000 Lumens|4000 lumen",
                              "5000 Lumens|5000 lumen"]),
           ("pack", "post", ["(2-Pack)", "(4-Pack)", ""])],
          (19, 89)),
    # Bath.
    _type("Bathroom Faucet", "Bath",
          ["bathroom faucet", "bathroom sink faucet", "lavatory faucet"],
          _PLUMBING_BRANDS,
          [("mount", "pre", ["Single Hole Single-Handle|single handle",
                             "4 in. Centerset 2-Handle|centerset",
                             "8 in. Widespread 2-Handle|widespread"]),
           ("colour", "post", _COLOURS_METAL)],
          (39, 249)),
    _type("Shower Head", "Bath",
          ["shower head", "showerhead", "rain shower head"],
          _PLUMBING_BRANDS,
          [("sprays", "pre", ["1-Spray", "5-Spray", "6-Spray"]),
           ("width", "pre", ["6 in.|6 in", "8 in.|8 in", "10 in.|10 in"]),
           ("feature", "pre", ["Rain", "Handheld", ""]),
           ("colour", "post", _COLOURS_METAL)],
          (19, 199)),
    _type("Toilet", "Bath", ["toilet", "toilets", "commode"],
          ["KOHLER", "American Standard", "Glacier Bay", "TOTO"],
          [("pieces", "pre", ["1-Piece|one piece|1 piece", "2-Piece"]),
           ("flush", "pre", ["1.28 GPF|1.28 gpf", "1.6 GPF|1.6 gpf",
                             "Dual Flush"]),
           ("shape", "pre", ["Elongated", "Round"]),
           ("colour", "post", ["in White", "in Biscuit"])],
          (99, 499)),
    _type("Bathroom Vanity with Cultured Marble Top", "Bath",
          ["bathroom vanity", "vanity", "bath vanity"],
          ["Glacier Bay", "Home Decorators Collection", "Design House"],
          [("width", "pre", ["24 in.|24 in|24 inch", "30 in.|30 in|30 inch",
                             "36 in.|36 in|36 inch", "48 in.|48 in|48 inch"]),
           ("colour", "post", ["in White", "in Gray|gray|grey",
                               "in Espresso"])],
          (149, 899)),
    _type("Towel Bar", "Bath", ["towel bar", "towel rack", "towel holder"],
          _PLUMBING_BRANDS[:3] + ["Franklin Brass"],
          [("width", "pre", ["18 in.|18 in", "24 in.|24 in"]),
           ("colour", "post", _COLOURS_METAL)],
          (9, 59)),
    # Kitchen.
    _type("Kitchen Faucet", "Kitchen",
          ["kitchen faucet", "kitchen sink faucet", "faucet"],
          _PLUMBING_BRANDS,
          [("style", "pre", ["Single-Handle Pull-Down Sprayer|pull down",
                             "Single-Handle Pull-Out Sprayer|pull out",
                             "2-Handle Standard|2 handle"]),
           ("colour", "post", ["in Stainless|stainless"] + _COLOURS_METAL[:3])],
          (69, 349)),
    _type("Kitchen Sink", "Kitchen",
          ["kitchen sink", "sink", "undermount sink"],
          ["Glacier Bay", "KOHLER", "Elkay"],
          [("material", "pre", ["Stainless Steel|stainless steel|stainless",
                                "Granite Composite|granite composite|composite",
                                "Fireclay"]),
           ("mount", "pre", ["Undermount", "Drop-In|drop in",
                             "Farmhouse Apron-Front|farmhouse"]),
           ("width", "pre", ["30 in.|30 in", "33 in.|33 in|33 inch"]),
           ("bowls", "post", ["Double Bowl", "Single Bowl"])],
          (149, 699)),
    _type("Cabinet Drawer Pull", "Kitchen",
          ["cabinet pull", "drawer pull", "cabinet handles", "drawer pulls"],
          ["Liberty", "Amerock", "Richelieu"],
          [("width", "pre", ["3 in. (76 mm)|3 in|3 inch",
                             "5-1/16 in. (128 mm)|5 inch|128mm",
                             "3-3/4 in. (96 mm)|96mm|3 3/4"]),
           ("colour", "post", ["in Satin Nickel|satin nickel|nickel",
                               "in Matte Black|matte black|black",
                               "in Oil-Rubbed Bronze|oil rubbed bronze|bronze",
                               "in Champagne Bronze|champagne bronze|gold"]),
           ("pack", "post", ["(10-Pack)", "(25-Pack)", ""])],
          (3, 49)),
    # Appliances.
    _type("French Door Refrigerator", "Appliances",
          ["french door refrigerator", "refrigerator", "fridge",
           "french door fridge"],
          _APPLIANCE_BRANDS,
          [("capacity", "pre", ["22 cu. ft.|22 cu ft", "25 cu. ft.|25 cu ft",
                                "28 cu. ft.|28 cu ft"]),
           ("colour", "post", _COLOURS_APPLIANCE)],
          (1199, 3299)),
    _type("Front Load Washer", "Appliances",
          ["front load washer", "washer", "washing machine"],
          _APPLIANCE_BRANDS[:4] + ["Maytag"],
          [("capacity", "pre", ["4.3 cu. ft.|4.3 cu ft",
                                "4.5 cu. ft.|4.5 cu ft",
                                "5.0 cu. ft.|5 cu ft"]),
           ("feature", "post", ["with Steam|steam", ""]),
           ("colour", "post", ["in White", "in Champagne",
                               "in Graphite Steel|graphite"])],
          (699, 1499)),
    _type("Over the Range Microwave", "Appliances",
          ["over the range microwave", "microwave", "otr microwave"],
          _APPLIANCE_BRANDS,
          [("capacity", "pre", ["1.7 cu. ft.|1.7 cu ft",
                                "1.9 cu. ft.|1.9 cu ft",
                                "2.1 cu. ft.|2.1 cu ft"]),
           ("colour", "post", _COLOURS_APPLIANCE),
           ("feature", "post", ["with Sensor Cooking|sensor cooking", ""])],
          (229, 699)),
    _type("Dishwasher", "Appliances", ["dishwasher", "dish washer"],
          _APPLIANCE_BRANDS[:4] + ["Bosch"],
          [("width", "pre", ["18 in.|18 in|18 inch", "24 in.|24 in|24 inch"]),
           ("control", "pre", ["Top Control", "Front Control"]),
           ("colour", "post", _COLOURS_APPLIANCE),
           ("feature", "post", ["with Third Rack|third rack", ""])],
          (399, 1199)),
    # Paint.
    _type("Interior Paint and Primer", "Paint",
          ["interior paint", "paint", "paint and primer", "wall paint"],
          ["BEHR PREMIUM PLUS|behr", "Glidden", "PPG", "Valspar"],
          [("capacity", "pre", ["1 qt.|1 qt|quart", "1 gal.|1 gal|1 gallon",
                                "5 gal.|5 gal|5 gallon"]),
           ("colour", "pre", ["Ultra Pure White|white|ultra pure white",
                              "Swiss Coffee", "Silver Drop", "Tint Base"]),
           ("finish", "pre", ["Flat", "Eggshell", "Satin",
                              "Semi-Gloss|semi gloss"])],
          (14, 189)),
    _type("Exterior Wood Stain", "Paint",
          ["deck stain", "wood stain", "exterior stain", "stain"],
          ["BEHR PREMIUM|behr", "Thompson's WaterSeal|thompsons|thompson",
           "Cabot", "Olympic"],
          [("capacity", "pre", ["1 gal.|1 gal|1 gallon",
                                "5 gal.|5 gal|5 gallon"]),
           ("colour", "pre", ["Cedar Naturaltone|cedar", "Redwood",
                              "Slate Gray|gray|grey"]),
           ("opacity", "pre", ["Semi-Transparent|semi transparent",
                               "Solid Color|solid", "Transparent"])],
          (29, 249)),
    _type("Spray Paint", "Paint", ["spray paint", "spray can paint"],
          ["Rust-Oleum|rustoleum|rust oleum", "KRYLON"],
          [("capacity", "pre", ["11 oz.|11 oz", "12 oz.|12 oz"]),
           ("finish", "pre", ["Gloss", "Flat", "Satin"]),
           ("colour", "pre", ["Black", "White", "Gold", "Hunter Green|green",
                              "Red"]),
           ("pack", "post", ["(6-Pack)", ""])],
          (4, 49)),
    _type("Paint Roller Cover", "Paint",
          ["paint roller", "roller cover", "roller covers"],
          ["Purdy", "Wooster", "Whizz", "HDX"],
          [("width", "pre", ["4 in.|4 in", "9 in.|9 in|9 inch"]),
           ("nap", "pre", ["x 3/8 in. Nap|3/8 nap|3/8", "x 1/2 in. Nap|1/2 nap",
                           "x 3/4 in. Nap|3/4 nap"]),
           ("material", "pre", ["Microfiber", "Woven", "Polyester"]),
           ("pack", "post", ["(3-Pack)", "(6-Pack)", ""])],
          (5, 39)),
    # Hardware.
    _type("Wood Screws", "Hardware", ["wood screws", "screws", "wood screw"],
          ["Everbilt", "GRK Fasteners|grk", "SPAX", "Grip-Rite|grip rite"],
          [("size", "pre", ["#8 x 1-1/4 in.|#8 x 1 1/4|1 1/4 in",
                            "#8 x 2 in.|#8 x 2|2 in",
                            "#10 x 3 in.|#10 x 3|3 in"]),
           ("material", "pre", ["Zinc-Plated|zinc",
                                "Stainless Steel|stainless steel|stainless"]),
           ("head", "pre", ["Phillips Flat-Head|phillips",
                            "Star Drive|star drive|torx"]),
           ("pack", "post", ["(100-Pack)", "(1 lb.-Box)|1 lb",
                             "(5 lb.-Box)|5 lb"])],
          (6, 49)),
    _type("Door Knob", "Hardware",
          ["door knob", "doorknob", "door knobs", "door handle"],
          _LOCK_BRANDS,
          [("function", "pre", ["Privacy Bed/Bath|privacy",
                                "Hall/Closet Passage|passage",
                                "Keyed Entry|keyed|entry"]),
           ("colour", "post", _LOCK_COLOURS)],
          (12, 59)),
    _type("Single Cylinder Deadbolt", "Hardware",
          ["deadbolt", "dead bolt", "door lock", "deadbolt lock"],
          _LOCK_BRANDS,
          [("feature", "pre", ["SmartKey Security|smartkey",
                               "Keypad Electronic|keypad", ""]),
           ("colour", "post", _LOCK_COLOURS)],
          (19, 199)),
    _type("Shelf Bracket", "Hardware",
          ["shelf bracket", "shelf brackets", "l bracket", "shelving bracket"],
          ["Everbilt", "Rubbermaid", "Simpson Strong-Tie|simpson strong tie"],
          [("size", "pre", ["6 in. x 8 in.|6x8|6 in",
                            "8 in. x 10 in.|8x10|8 in",
                            "10 in. x 12 in.|10x12|10 in"]),
           ("material", "pre", ["Heavy-Duty Steel|heavy duty|steel",
                                "Decorative Wood|wood", "Cast Iron"]),
           ("colour", "post", ["in White", "in Black|black", ""]),
           ("pack", "post", ["(2-Pack)", ""])],
          (3, 39)),
    # Outdoors.
    _type("Garden Hose", "Outdoors", ["garden hose", "hose", "water hose"],
          ["Flexzilla", "Gilmour", "Melnor", "HDX"],
          [("size", "pre", ["1/2 in. Dia x 25 ft.|25 ft|25 foot",
                            "5/8 in. Dia x 50 ft.|50 ft|50 foot",
                            "5/8 in. Dia x 100 ft.|100 ft|100 foot"]),
           ("feature", "pre", ["Heavy-Duty|heavy duty", "Kink-Free|kink free",
                               "Expandable"])],
          (14, 99)),
    _type("Gas Walk Behind Lawn Mower", "Outdoors",
          ["lawn mower", "gas mower", "push mower", "mower"],
          ["Toro", "Honda", "RYOBI", "Craftsman", "Troy-Bilt|troy bilt"],
          [("width", "pre", ["21 in.|21 in|21 inch", "22 in.|22 in|22 inch"]),
           ("drive", "pre", ["Self-Propelled|self propelled", "Push"]),
           ("engine", "post", ["with 140cc Engine|140cc",
                               "with 163cc Engine|163cc",
                               ""])],
          (249, 799)),
    _type("Cordless String Trimmer", "Outdoors",
          ["string trimmer", "weed eater", "weed wacker", "trimmer"],
          ["RYOBI", "EGO", "DEWALT", "Greenworks", "Milwaukee"],
          [("voltage", "pre", ["18V|18v|18 volt", "20V MAX|20v|20v max|20 volt",
                               "40V|40v|40 volt", "80V|80v|80 volt"]),
           ("feature", "pre", ["Brushless", "Attachment Capable", ""]),
           ("kit", "post", ["Kit with Battery and Charger|kit|with battery",
                            "(Tool-Only)|tool only"])],
          (79, 299)),
    _type("Propane Gas Grill", "Outdoors",
          ["gas grill", "grill", "bbq grill", "propane grill"],
          ["Weber", "Char-Broil|char broil|charbroil", "Nexgrill",
           "Dyna-Glo|dyna glo"],
          [("burners", "pre", ["2-Burner", "3-Burner", "4-Burner", "5-Burner"]),
           ("colour", "post", ["in Stainless Steel|stainless steel|stainless",
                               "in Black|black"]),
           ("feature", "post", ["with Side Burner|side burner", ""])],
          (199, 1099)),
    _type("Potting Mix", "Outdoors", ["potting soil", "potting mix", "soil"],
          ["Miracle-Gro|miracle gro|miraclegro", "Scotts", "Vigoro"],
          [("capacity", "pre", ["8 qt.|8 qt", "16 qt.|16 qt",
                                "1 cu. ft.|1 cu ft",
                                "2 cu. ft.|2 cu ft"]),
           ("kind", "pre", ["Indoor", "Moisture Control", "Organic",
                            "Cactus, Palm and Citrus|cactus"])],
          (4, 29)),
    # Flooring.
    _type("Waterproof Luxury Vinyl Plank Flooring", "Flooring",
          ["vinyl plank flooring", "vinyl flooring", "lvp",
           "luxury vinyl plank"],
          ["LifeProof", "TrafficMaster", "Home Decorators Collection", "Pergo"],
          [("colour", "pre", ["Sterling Oak|sterling oak|oak",
                              "Coastal Hickory|hickory", "Gray Maple|gray|grey",
                              "Natural Walnut|walnut"]),
           ("thickness", "pre", ["12 MIL|12 mil", "20 MIL|20 mil", "6 mm|6mm"]),
           ("size", "pre", ["7.1 in. W x 48 in. L|7 x 48",
                            "8.7 in. W x 59 in. L|9 x 60"])],
          (39, 119)),
    _type("Porcelain Floor and Wall Tile", "Flooring",
          ["porcelain tile", "floor tile", "tile", "wall tile"],
          ["Daltile", "MSI", "TrafficMaster", "Marazzi"],
          [("colour", "pre", ["Gray|gray|grey", "White", "Beige", "Wood Look"]),
           ("size", "pre", ["12 in. x 24 in.|12x24", "24 in. x 24 in.|24x24",
                            "6 in. x 24 in.|6x24"]),
           ("finish", "pre", ["Matte", "Polished", "Glazed"])],
          (19, 89)),
    # Building Materials.
    _type("Drywall Panel", "Building Materials",
          ["drywall", "sheetrock", "drywall sheet", "gypsum board"],
          ["USG Sheetrock|usg|sheetrock", "Gold Bond", "CertainTeed"],
          [("thickness", "pre", ["1/4 in. x|1/4", "1/2 in. x|1/2",
                                 "5/8 in. x|5/8"]),
           ("size", "pre", ["4 ft. x 8 ft.|4x8", "4 ft. x 12 ft.|4x12"]),
           ("kind", "pre", ["UltraLight|ultralight|lightweight",
                            "Mold Tough|mold resistant",
                            "Fire-Resistant|fire resistant|fire rated", ""])],
          (12, 29)),
    _type("Pressure-Treated Lumber", "Building Materials",
          ["pressure treated lumber", "lumber", "treated lumber", "pt lumber"],
          [],
          [("size", "pre", ["2 in. x 4 in. x 8 ft.|2x4|2x4x8",
                            "2 in. x 6 in. x 10 ft.|2x6|2x6x10",
                            "4 in. x 4 in. x 8 ft.|4x4|4x4x8",
                            "2 in. x 8 in. x 12 ft.|2x8|2x8x12"]),
           ("wood", "pre", ["Southern Yellow Pine|pine", "Hem-Fir|hem fir",
                            "Douglas Fir", ""]),
           ("grade", "pre", ["#2 Prime|#2|prime", "Ground Contact",
                             "Above Ground"])],
          (4, 39), unbranded_share=1.0),
    _type("Fiberglass Insulation Roll", "Building Materials",
          ["insulation", "fiberglass insulation", "insulation roll",
           "batt insulation"],
          ["Owens Corning", "Johns Manville", "Knauf"],
          [("rating", "pre", ["R-13|r13|r-13", "R-19|r19|r-19",
                              "R-30|r30|r-30"]),
           ("facing", "pre", ["Kraft Faced|kraft faced|faced", "Unfaced"]),
           ("size", "post", ["15 in. x 32 ft.|15 in",
                             "23 in. x 39.2 ft.|23 in"])],
          (19, 69)),
    # Storage & Organization.
    _type("Plastic Storage Tote", "Storage & Organization",
          ["storage bin", "storage tote", "plastic storage bins", "tote"],
          ["HDX", "Sterilite", "Husky", "Rubbermaid"],
          [("capacity", "pre", ["12 Gal.|12 gal|12 gallon",
                                "18 Gal.|18 gal|18 gallon",
                                "27 Gal.|27 gal|27 gallon"]),
           ("colour", "post", ["in Black with Yellow Lid|black", "in Clear",
                               "in Gray|gray|grey"]),
           ("pack", "post", ["(4-Pack)", ""])],
          (7, 59)),
    _type("Steel Garage Storage Shelving Unit", "Storage & Organization",
          ["garage shelving", "shelving unit", "metal shelves",
           "storage shelves"],
          ["Husky", "HDX", "Edsal", "Gladiator"],
          [("tiers", "pre", ["4-Tier", "5-Tier"]),
           ("colour", "pre", ["Black", "Gray|gray|grey"]),
           ("size", "post", ["(36 in. W x 72 in. H x 18 in. D)|36 in",
                             "(48 in. W x 72 in. H x 24 in. D)|48 in",
                             "(77 in. W x 78 in. H x 24 in. D)|77 in"])],
          (59, 299)),
    # Heating & Cooling.
    _type("Pleated Air Filter", "Heating & Cooling",
          ["air filter", "furnace filter", "ac filter", "hvac filter"],
          ["Filtrete", "Honeywell Home|honeywell", "HDX"],
          [("size", "pre", ["14 in. x 20 in. x 1 in.|14x20x1",
                            "16 in. x 25 in. x 1 in.|16x25x1",
                            "20 in. x 20 in. x 1 in.|20x20x1",
                            "20 in. x 25 in. x 1 in.|20x25x1"]),
           ("rating", "pre", ["MERV 8", "MERV 11", "MERV 13"]),
           ("pack", "post", ["(4-Pack)", "(6-Pack)", ""])],
          (9, 79)),
    _type("Window Air Conditioner", "Heating & Cooling",
          ["window air conditioner", "air conditioner", "window ac", "ac unit"],
          ["LG", "GE", "Frigidaire", "Midea"],
          [("btu", "pre", ["5,000 BTU|5000 btu", "8,000 BTU|8000 btu",
                           "10,000 BTU|10000 btu", "12,000 BTU|12000 btu"]),
           ("voltage", "pre", ["115-Volt|115v|115 volt",
                               "230-Volt|230v|230 volt"]),
           ("feature", "post", ["with Remote|remote", "with Wi-Fi|wifi|smart",
                                ""])],
          (169, 599)),
    _type("Smart Thermostat", "Heating & Cooling",
          ["thermostat", "smart thermostat", "wifi thermostat"],
          ["Google Nest|nest|google nest", "ecobee", "Honeywell Home|honeywell",
           "Emerson"],
          [("feature", "pre", ["Wi-Fi|wifi", "Programmable", "Learning"]),
           ("colour", "post", ["in Stainless Steel|stainless steel|stainless",
                               "in White", "in Black|black"])],
          (79, 249)),
    _type("Electric Space Heater", "Heating & Cooling",
          ["space heater", "heater", "electric heater", "portable heater"],
          ["Vornado", "Lasko", "De'Longhi|delonghi", "Comfort Zone"],
          [("wattage", "pre", ["750-Watt|750 watt|750w",
                               "1500-Watt|1500 watt|1500w"]),
           ("kind", "pre", ["Ceramic", "Oil-Filled Radiant|oil filled|radiator",
                            "Infrared"])],
          (29, 149)),
)

# Names people use for a product type that no title contains (synonyms, use
# words, trade slang): only a model that learned from the logs can match
# them, which makes learning visible on the sample. Words shared with titles
# would let the towers' untrained word tables match them already.
EVERYDAY_NAMES = {
    "Cordless Drill/Driver Kit": ("screw gun", "borer"),
    "Cordless Impact Driver": ("lug nut gun", "torque gun"),
    "Circular Saw": ("buzzsaw", "plywood cutter"),
    "Reciprocating Saw": ("demolition cutter", "pipe cutter"),
    "Drill Bit Set": ("auger assortment", "boring bits"),
    "Rolling Tool Cabinet": ("mechanic chest", "toolbox on wheels"),
    "Wet/Dry Shop Vacuum": ("hoover", "sawdust sucker"),
    "LED Light Bulb": ("lamps", "energy saver lamps"),
    "Ceiling Fan": ("overhead propeller", "room cooler blades"),
    "Flush Mount Ceiling Light": ("hallway dome fixture", "boob lamp"),
    "Outdoor Wall Lantern Sconce": ("patio lamp", "entryway lamp"),
    "LED Shop Light": ("workbench tube", "fluorescent replacement"),
    "Bathroom Faucet": ("basin tap", "washbasin mixer"),
    "Shower Head": ("rainfall nozzle", "bathing nozzle"),
    "Toilet": ("commode", "john"),
    "Bathroom Vanity with Cultured Marble Top": ("washstand",
                                                 "powder room cabinetry"),
    "Towel Bar": ("washcloth hanger", "linen rail"),
    "Kitchen Faucet": ("dish tap", "galley mixer"),
    "Kitchen Sink": ("scullery basin", "dishwashing basin"),
    "Cabinet Drawer Pull": ("cupboard handles", "hardware knobs"),
    "French Door Refrigerator": ("fridge", "icebox"),
    "Front Load Washer": ("laundry machine", "clothes cleaner"),
    "Over the Range Microwave": ("nuker", "popcorn oven"),
    "Dishwasher": ("plate cleaner", "dish machine"),
    "Interior Paint and Primer": ("emulsion", "bedroom colour"),
    "Exterior Wood Stain": ("fence sealer", "decking treatment"),
    "Spray Paint": ("rattle can", "aerosol colour"),
    "Paint Roller Cover": ("fuzzy sleeve", "fuzzy refill"),
    "Wood Screws": ("fixings", "deck fixings"),
    "Door Knob": ("doorway latch", "twist opener"),
    "Single Cylinder Deadbolt": ("lockset bolt", "burglar latch"),
    "Shelf Bracket": ("ledge support", "ledge holder"),
    "Garden Hose": ("spigot line", "yard watering tube"),
    "Gas Walk Behind Lawn Mower": ("grass cutter", "yard cutter"),
    "Cordless String Trimmer": ("whipper snipper", "edger"),
    "Propane Gas Grill": ("barbecue", "cookout station"),
    "Potting Mix": ("planter dirt", "compost"),
    "Waterproof Luxury Vinyl Plank Flooring": ("click planks", "laminate boards"),
    "Porcelain Floor and Wall Tile": ("backsplash squares", "backsplash"),
    "Drywall Panel": ("wallboard", "plasterboard"),
    "Pressure-Treated Lumber": ("two by four", "framing studs"),
    "Fiberglass Insulation Roll": ("attic batts", "pink stuff"),
    "Plastic Storage Tote": ("moving crate", "lidded crate"),
    "Steel Garage Storage Shelving Unit": ("metal racking", "boltless racking"),
    "Pleated Air Filter": ("return vent screen", "dust catcher"),
    "Window Air Conditioner": ("sash cooler", "room chiller"),
    "Smart Thermostat": ("temperature brain", "temperature controller"),
    "Electric Space Heater": ("radiator", "room warmer"),
}
# Share of queries that name their product this way.
EVERYDAY_NAME_SHARE = 0.5

# --- Behaviour and log constants ------------------------------------------
FIRST_ITEM_ID = 100001
LOG_START_TIME = 1767225600  # 2026-01-01 00:00:00 UTC, as the benchmark.
LOG_DAYS = 14
# Grades from attribute overlap (before rater noise): the right product type
# starts at 3 and loses this much per attribute or brand the query names and
# the item lacks; a different type of the same category is barely relevant.
MISMATCH_PENALTY = 0.6
SAME_TYPE_FLOOR = 1.6
RELATED_BASE, RELATED_PER_MATCH, RELATED_CAP = 1.3, 0.15, 1.8
NUM_RATERS, RATER_NOISE = 3, 0.35
# The ranker sees grade + per-item bias + per-request noise, then injects
# random catalogue items into some slots (ads, exploration, bad matches).
RANKER_NOISE, ITEM_BIAS_NOISE, INJECTED_SHARE = 0.6, 0.25, 0.15
POSITION_BIAS_EXPONENT = 0.9
DIRT_KINDS = ("empty_query", "unknown_item", "order_without_click", "duplicate")
# Candidates judged per held-out query: relevant, partly relevant, random.
JUDGED_RELEVANT, JUDGED_PARTIAL, JUDGED_RANDOM = 8, 4, 3

# --- Catalogue ------------------------------------------------------------


def _typed(title: str) -> str:
  """How a person types an attribute: normalised words, no leading filler."""
  return re.sub(r"^(in|with) ", "", text_rule.canonical(title))


def _parse_value(value: str) -> Tuple[str, Tuple[str, ...]]:
  """`"Title|typed|typed"` -> (title, typed forms)."""
  title, *forms = value.split("|")
  return title, tuple(forms) if forms else (_typed(title),)


@dataclasses.dataclass
class Catalog:
  """Items as parallel arrays plus the vocabularies their codes index.

  Attribute codes are shared by all product types: `attribute_keys[slot]`
  lists each value's first typed form, so relevance compares codes.
  """
  item_ids: np.ndarray  # int64 [N]
  titles: List[str]
  type_index: np.ndarray  # int [N] into PRODUCT_TYPES
  brand_index: np.ndarray  # int [N] into brands; -1 = no brand
  attributes: np.ndarray  # int [N, num slots]; -1 = attribute absent
  prices: np.ndarray  # float [N]
  categories: np.ndarray  # str [N], the product type's category
  slot_names: List[str]
  attribute_keys: List[List[str]]
  brands: List[Tuple[str, Tuple[str, ...]]]  # (title, typed forms)


def _vocabularies():
  """Slot names, per-slot value keys and brands of all the templates."""
  slot_names, keys, brands = [], [], []
  for product in PRODUCT_TYPES:
    for slot, _, slot_values in product.slots:
      if slot not in slot_names:
        slot_names.append(slot)
        keys.append([])
      known = keys[slot_names.index(slot)]
      for value in slot_values:
        key = _parse_value(value)[1][0]
        if value and key not in known:
          known.append(key)
    for brand in product.brands:
      parsed = _parse_value(brand)
      if parsed not in brands:
        brands.append(parsed)
  return slot_names, keys, brands


def _typed_forms(product: ProductType, slot: str, key: str) -> Tuple[str, ...]:
  """How people type the value of `slot` whose key is `key` for `product`."""
  values = next(values for name, _, values in product.slots if name == slot)
  return next(
      forms for _, forms in map(_parse_value, values) if forms[0] == key)


def _price(rng: np.random.Generator, low: float, high: float) -> float:
  """Log-uniform price with a shop-like ending (.97 or .00)."""
  dollars = int(np.exp(rng.uniform(np.log(low), np.log(high))))
  return float(dollars) + (0.97 if rng.random() < 0.7 else 0.0)


def build_catalog(rng: np.random.Generator, num_items: int) -> Catalog:
  """Samples `num_items` products from the templates, titles mostly distinct.

  Item ids start at FIRST_ITEM_ID with random gaps, as a real catalogue
  where products were delisted, so code never relies on dense ids.
  """
  slot_names, keys, brands = _vocabularies()
  brand_titles = [b[0] for b in brands]
  titles, type_index, brand_index, attributes, prices = [], [], [], [], []
  seen = set()
  for _ in range(num_items):
    # A few tries for a fresh title; a rare repeat is as real shops have.
    for _ in range(20):
      t = int(rng.integers(len(PRODUCT_TYPES)))
      product = PRODUCT_TYPES[t]
      brand = ""
      if product.brands and rng.random() >= product.unbranded_share:
        brand = product.brands[rng.integers(len(product.brands))]
        brand = _parse_value(brand)[0]
      codes = np.full(len(slot_names), -1)
      pre, post = [], []
      for slot, where, slot_values in product.slots:
        value = slot_values[rng.integers(len(slot_values))]
        s = slot_names.index(slot)
        if value:
          text, forms = _parse_value(value)
          codes[s] = keys[s].index(forms[0])
          (pre if where == "pre" else post).append(text)
      title = " ".join(([brand] if brand else []) + pre + [product.name] + post)
      if title not in seen:
        break
    seen.add(title)
    titles.append(title)
    type_index.append(t)
    brand_index.append(brand_titles.index(brand) if brand else -1)
    attributes.append(codes)
    prices.append(_price(rng, *product.price_range))
  gaps = rng.geometric(0.6, size=num_items) - 1
  gaps[0] = 0
  item_ids = FIRST_ITEM_ID + np.arange(num_items) + np.cumsum(gaps)
  return Catalog(item_ids.astype(np.int64), titles, np.array(type_index),
                 np.array(brand_index), np.array(attributes, dtype=np.int64),
                 np.array(prices),
                 np.array([PRODUCT_TYPES[t].category for t in type_index]),
                 slot_names, keys, brands)


# --- Queries --------------------------------------------------------------


@dataclasses.dataclass
class Query:
  """A searcher's words and what they want.

  The intent (product type, named attributes, named brand) decides every
  item's grade; the text is all the logs and the model ever see.
  """
  text: str
  type_index: int
  brand_index: int  # -1 = brand not named
  attributes: np.ndarray  # int [num slots]; -1 = attribute not named

  @property
  def specificity(self) -> int:
    return int((self.attributes >= 0).sum() + (self.brand_index >= 0))


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _misspell(rng: np.random.Generator, text: str) -> str:
  """One typing slip in a longer word: drop, swap, double or next key."""
  words = text.split()
  candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
  if not candidates:
    return text
  i = candidates[rng.integers(len(candidates))]
  word = words[i]
  at = int(rng.integers(1, len(word) - 1))
  slip = rng.integers(4)
  if slip == 0:
    word = word[:at] + word[at + 1:]
  elif slip == 1:
    word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
  elif slip == 2:
    word = word[:at] + word[at] + word[at:]
  else:
    row = next(r for r in _KEYBOARD_ROWS if word[at] in r)
    j = row.index(word[at])
    neighbours = row[max(j - 1, 0):j] + row[j + 1:j + 2]
    word = word[:at] + neighbours[rng.integers(len(neighbours))] + word[at + 1:]
  words[i] = word
  return " ".join(words)


def _pick(rng: np.random.Generator, forms: Sequence[str]) -> str:
  """A typed form, the first (most common) one half of the time."""
  if len(forms) == 1 or rng.random() < 0.5:
    return forms[0]
  return forms[rng.integers(1, len(forms))]


def _query_from_item(rng: np.random.Generator, catalog: Catalog,
                     item: int) -> Query:
  """A query someone looking for `item` might type.

  Queries start from an item so that each one has a fully relevant answer;
  they name its type and a few of its attributes (most name none or one).
  """
  product = PRODUCT_TYPES[catalog.type_index[item]]
  present = np.flatnonzero(catalog.attributes[item] >= 0)
  num_named = min(len(present), int(rng.choice(4, p=[0.25, 0.4, 0.25, 0.1])))
  named = np.sort(rng.choice(present, size=num_named, replace=False))
  attributes = np.full(len(catalog.slot_names), -1)
  before, after = [], []
  for s in named:
    attributes[s] = catalog.attributes[item, s]
    forms = _typed_forms(product, catalog.slot_names[s],
                         catalog.attribute_keys[s][attributes[s]])
    (before if rng.random() < 0.7 else after).append(_pick(rng, forms))
  brand_index = -1
  if catalog.brand_index[item] >= 0 and rng.random() < 0.3:
    brand_index = int(catalog.brand_index[item])
    brand = _pick(rng, catalog.brands[brand_index][1])
    (before.insert(0, brand) if rng.random() < 0.85 else after.append(brand))
  if rng.random() < EVERYDAY_NAME_SHARE:
    everyday = EVERYDAY_NAMES[product.name]
    noun = everyday[rng.integers(len(everyday))]
  else:
    noun_weights = 0.5**np.arange(len(product.nouns))
    noun = product.nouns[rng.choice(len(product.nouns),
                                    p=noun_weights / noun_weights.sum())]
  text = " ".join(before + [noun] + after).lower()
  if rng.random() < 0.08:
    text = _misspell(rng, text)
  return Query(" ".join(text.split()), int(catalog.type_index[item]),
               brand_index, attributes)


def build_queries(rng: np.random.Generator, catalog: Catalog,
                  count: int) -> List[Query]:
  """`count` queries with distinct texts (a text means one thing)."""
  queries, seen = [], set()
  for _ in range(200 * count):
    if len(queries) == count:
      return queries
    query = _query_from_item(rng, catalog,
                             int(rng.integers(len(catalog.titles))))
    if query.text not in seen:
      seen.add(query.text)
      queries.append(query)
  raise ValueError(f"Could not write {count} distinct queries for "
                   f"{len(catalog.titles)} items; ask for fewer queries.")


# --- Relevance ------------------------------------------------------------


def latent_grades(query: Query, catalog: Catalog) -> np.ndarray:
  """Noise-free grade (1..3) of every item for `query`, from attribute overlap.

  The right product type is fully relevant unless it contradicts what the
  query names; a sibling type of the same category (a drill for "impact
  driver") is slightly relevant, more so when it shares named attributes;
  anything else is irrelevant.
  """
  named = query.attributes >= 0
  matches = (catalog.attributes[:, named] == query.attributes[named]).sum(1)
  num_named = int(named.sum())
  if query.brand_index >= 0:
    matches = matches + (catalog.brand_index == query.brand_index)
    num_named += 1
  same_type = catalog.type_index == query.type_index
  same_category = (
      catalog.categories == PRODUCT_TYPES[query.type_index].category)
  return np.where(
      same_type,
      np.maximum(3.0 - MISMATCH_PENALTY * (num_named - matches),
                 SAME_TYPE_FLOOR),
      np.where(
          same_category,
          np.minimum(RELATED_BASE + RELATED_PER_MATCH * matches, RELATED_CAP),
          1.0))


def rated_grades(rng: np.random.Generator, latent: np.ndarray) -> np.ndarray:
  """Mean of NUM_RATERS integer votes around the latent grade, 2 decimals.

  Gives the benchmark's grade values (1.0, 1.33, ..., 3.0) and its rater
  disagreement; clicks and judgments both use these grades.
  """
  noise = rng.normal(0.0, RATER_NOISE, latent.shape + (NUM_RATERS,))
  votes = np.clip(np.rint(latent[..., None] + noise), 1, 3)
  return np.round(votes.mean(-1), 2)


def grade_matrix(rng: np.random.Generator, queries: Sequence[Query],
                 catalog: Catalog) -> np.ndarray:
  """Rated grades [num queries, num items]."""
  return np.stack(
      [rated_grades(rng, latent_grades(q, catalog)) for q in queries])


# --- Ranker and click model -----------------------------------------------


def attractiveness(grade):
  """P(click | examined): 0.05 at grade 1 rising steeply to 0.95 at grade 3."""
  return 0.05 * 19.0**((np.asarray(grade) - 1.0) / 2.0)


def click_probability(position, grade):
  """Position-based model: (1/position)^0.9 * attractiveness(grade)."""
  position = np.asarray(position, dtype=float)
  return position**-POSITION_BIAS_EXPONENT * attractiveness(grade)


def cart_probability(grade):
  """P(add to cart | click): 0.08 (grade 1) to 0.6 (grade 3)."""
  return 0.08 + 0.52 * ((np.asarray(grade) - 1.0) / 2.0)**2


def order_probability(grade):
  """P(order | add to cart): 0.15 (grade 1) to 0.8 (grade 3)."""
  return 0.15 + 0.65 * ((np.asarray(grade) - 1.0) / 2.0)**2


def rank_pages(rng: np.random.Generator, grades: np.ndarray,
               item_bias: np.ndarray, num_pages: int,
               page_size: int) -> np.ndarray:
  """Item indices [num_pages, page_size] a production ranker shows for a query.

  It orders by grade + a fixed per-item bias (popularity, promotions) +
  per-request noise, so good items tend to the top but not always, and then
  replaces a few slots with random catalogue items.
  """
  scores = grades + item_bias + rng.normal(0.0, RANKER_NOISE,
                                           (num_pages, len(grades)))
  top = np.argpartition(-scores, page_size - 1, axis=1)[:, :page_size]
  order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
  pages = np.take_along_axis(top, order, 1)
  for page in pages:
    for slot in np.flatnonzero(rng.random(page_size) < INJECTED_SHARE):
      candidate = int(rng.integers(len(grades)))
      if candidate not in page:
        page[slot] = candidate
  return pages


def _zipf_counts(rng: np.random.Generator, queries: Sequence[Query],
                 num_requests: int) -> np.ndarray:
  """Requests per query: one each, the rest Zipf-like by popularity rank.

  Short, general queries tend to be the popular ones.
  """
  key = np.array([q.specificity for q in queries]) + rng.uniform(
      0, 2, len(queries))
  rank = np.empty(len(queries), dtype=np.int64)
  rank[np.argsort(key, kind="stable")] = np.arange(1, len(queries) + 1)
  weights = 1.0 / rank
  return 1 + rng.multinomial(num_requests - len(queries),
                             weights / weights.sum())


@dataclasses.dataclass
class Impressions:
  """Log rows as parallel columns, in the order they are written.

  `query` indexes the training queries; -1 marks an empty query cell.
  """
  request: np.ndarray
  event_time: np.ndarray
  user: np.ndarray
  query: np.ndarray
  item_id: np.ndarray
  position: np.ndarray
  clicked: np.ndarray
  added_to_cart: np.ndarray
  ordered: np.ndarray

  def take(self, index: np.ndarray) -> "Impressions":
    columns = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    return Impressions(**{name: c[index] for name, c in columns.items()})


def simulate_impressions(rng: np.random.Generator, catalog: Catalog,
                         queries: Sequence[Query], grades: np.ndarray,
                         num_requests: int, page_size: int) -> Impressions:
  """Requests over LOG_DAYS, pages from the ranker, behaviour from grades.

  Rows come in time order, positions ascending within a request; request
  numbers are shuffled so that they say nothing about time, as real ids.
  """
  counts = _zipf_counts(rng, queries, num_requests)
  request_query = rng.permutation(np.repeat(np.arange(len(queries)), counts))
  item_bias = rng.normal(0.0, ITEM_BIAS_NOISE, len(catalog.titles))
  pages = np.empty((num_requests, page_size), dtype=np.int64)
  for q in range(len(queries)):
    rows = np.flatnonzero(request_query == q)
    pages[rows] = rank_pages(rng, grades[q], item_bias, len(rows), page_size)
  times = np.sort(
      rng.integers(LOG_START_TIME, LOG_START_TIME + LOG_DAYS * 86400,
                   num_requests))
  users = rng.integers(0, max(num_requests // 4, 1), num_requests)
  request_numbers = rng.permutation(num_requests)
  request = np.repeat(np.arange(num_requests), page_size)
  position = np.tile(np.arange(1, page_size + 1), num_requests)
  grade = grades[request_query[request], pages.ravel()]
  clicked = rng.random(len(grade)) < click_probability(position, grade)
  carted = clicked & (rng.random(len(grade)) < cart_probability(grade))
  ordered = carted & (rng.random(len(grade)) < order_probability(grade))
  return Impressions(request_numbers[request], times[request], users[request],
                     request_query[request],
                     catalog.item_ids[pages.ravel()], position,
                     clicked.astype(np.int64), carted.astype(np.int64),
                     ordered.astype(np.int64))


# --- Dirt -----------------------------------------------------------------


def add_dirt(rng: np.random.Generator, impressions: Impressions,
             catalog: Catalog,
             fraction: float) -> Tuple[Impressions, Dict[str, int]]:
  """Spoils about `fraction` of the rows, evenly over DIRT_KINDS.

  Each spoiled row has exactly one kind of dirt (so counts can be checked
  from the files): an empty query cell, an item id missing from the
  catalogue (a delisted product), an order without a click (lost click
  event), or an exact copy of the row right after it (a double-logged
  event).
  """
  n = len(impressions.request)
  per_kind = int(round(n * fraction / len(DIRT_KINDS)))
  dirty = impressions.take(np.arange(n))  # A copy to edit.
  unclicked = np.flatnonzero(dirty.clicked == 0)
  order_rows = rng.choice(unclicked, per_kind, replace=False)
  rest = np.setdiff1d(np.arange(n), order_rows)
  others = rng.choice(rest, 3 * per_kind, replace=False)
  empty_rows, unknown_rows, duplicate_rows = np.split(others, 3)
  dirty.query[empty_rows] = -1
  ids = catalog.item_ids
  # Gaps between ids (delisted products) and ids past the newest one.
  unknown_ids = np.setdiff1d(np.arange(ids.min(), ids.max() + per_kind + 1),
                             ids)
  dirty.item_id[unknown_rows] = rng.choice(unknown_ids, per_kind, replace=False)
  dirty.clicked[order_rows] = 0
  dirty.added_to_cart[order_rows] = 1
  dirty.ordered[order_rows] = 1
  repeats = np.ones(n, dtype=np.int64)
  repeats[duplicate_rows] = 2
  counts = dict(zip(DIRT_KINDS, [per_kind] * len(DIRT_KINDS)))
  return dirty.take(np.repeat(np.arange(n), repeats)), counts


# --- Judgments ------------------------------------------------------------


def judgment_pool(rng: np.random.Generator, grades: np.ndarray) -> np.ndarray:
  """Items to judge for one query: relevant, partly relevant and random ones.

  Like the benchmark's pools, a few of each so that recall has targets and
  NDCG sees graded misses; the pool is not exhaustive.
  """

  def sample(candidates, size):
    return rng.choice(candidates, min(size, len(candidates)), replace=False)

  relevant = np.flatnonzero(grades >= features.RELEVANT_GRADE)
  partial = np.flatnonzero((grades >= 1.5) & (grades < features.RELEVANT_GRADE))
  irrelevant = np.flatnonzero(grades < 1.5)
  return np.sort(
      np.concatenate([
          sample(relevant, JUDGED_RELEVANT),
          sample(partial, JUDGED_PARTIAL),
          sample(irrelevant, JUDGED_RANDOM)
      ]))


# --- The world and the writers --------------------------------------------


@dataclasses.dataclass
class World:
  """Everything behaviour derives from: catalogue, queries and their grades.

  Training queries feed the logs; judged queries are held out of them.
  """
  catalog: Catalog
  queries: List[Query]
  grades: np.ndarray  # [len(queries), num items]
  judged_queries: List[Query]
  judged_grades: np.ndarray  # [len(judged_queries), num items]


# Independent random streams per stage, so that e.g. more requests leave
# the catalogue and the queries unchanged.
(_CATALOG_STREAM, _QUERY_STREAM, _GRADE_STREAM, _LOG_STREAM, _DIRT_STREAM,
 _JUDGMENT_STREAM) = range(6)


def _stream(seed: int, stage: int) -> np.random.Generator:
  return np.random.default_rng([seed, stage])


def build_world(seed: int, num_items: int, num_queries: int,
                num_judged_queries: int) -> World:
  """The catalogue, training and held-out queries and all their grades."""
  catalog = build_catalog(_stream(seed, _CATALOG_STREAM), num_items)
  query_rng = _stream(seed, _QUERY_STREAM)
  queries = build_queries(query_rng, catalog, num_queries + num_judged_queries)
  grades = grade_matrix(_stream(seed, _GRADE_STREAM), queries, catalog)
  # A judged query needs a relevant item, or recall would leave it out.
  eligible = np.flatnonzero((grades >= features.RELEVANT_GRADE).any(1))
  if len(eligible) < num_judged_queries:
    raise ValueError(f"Only {len(eligible)} queries have a relevant item; "
                     f"ask for fewer than {num_judged_queries} judged ones.")
  judged = np.zeros(len(queries), dtype=bool)
  judged[query_rng.choice(eligible, num_judged_queries, replace=False)] = True
  return World(catalog, [q for q, j in zip(queries, judged) if not j],
               grades[~judged], [q for q, j in zip(queries, judged) if j],
               grades[judged])


def _write_atomically(path: str, rows: Sequence[Sequence], compress: bool):
  """Writes CSV rows to `path` through a temporary file and a rename.

  A reader never sees half a file; gzip with mtime 0 and no file name keeps
  reruns byte-identical wherever they write.
  """
  tmp = path + ".tmp"
  with open(tmp, "wb") as raw:
    binary = gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                           mtime=0) if compress else raw
    with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
      csv.writer(text, lineterminator="\n").writerows(rows)
    if compress:
      binary.close()
  os.replace(tmp, path)


def write_catalog(path: str, catalog: Catalog):
  """`item_id,title,brand,category,price`; no brand is an empty cell."""
  brands = [b[0] for b in catalog.brands] + [""]  # Index -1: no brand.
  rows = [(features.ITEM_ID, features.TITLE, *features.ITEM_SIDE_FEATURES)]
  for i, title in enumerate(catalog.titles):
    rows.append((int(catalog.item_ids[i]), title,
                 brands[catalog.brand_index[i]], catalog.categories[i],
                 f"{catalog.prices[i]:.2f}"))
  _write_atomically(path, rows, compress=False)


def log_shard_name(shard: int, num_shards: int) -> str:
  return f"search_logs-{shard:05d}-of-{num_shards:05d}.csv.gz"


def write_logs(logs_dir: str, impressions: Impressions,
               queries: Sequence[Query], num_shards: int) -> List[str]:
  """Time-ordered rows cut into `num_shards` files at request boundaries."""
  os.makedirs(logs_dir, exist_ok=True)
  stale = [
      f for f in os.listdir(logs_dir)
      if re.fullmatch(r"search_logs-\d{5}-of-\d{5}\.csv\.gz", f) and
      not f.endswith(f"-of-{num_shards:05d}.csv.gz")
  ]
  for name in sorted(stale):
    # An earlier run with another shard count; its files would join the glob.
    logging.warning("Removing stale log shard %s", name)
    os.remove(os.path.join(logs_dir, name))
  texts = [q.text for q in queries] + [""]  # Index -1 is the empty query.
  starts = np.flatnonzero(np.r_[True, np.diff(impressions.request) != 0])
  bounds = [chunk[0] for chunk in np.array_split(starts, num_shards)]
  bounds.append(len(impressions.request))
  paths = []
  for shard in range(num_shards):
    part = impressions.take(np.arange(bounds[shard], bounds[shard + 1]))
    rows = [features.LOG_COLUMNS]
    for r, t, u, q, i, p, c, a, o in zip(
        part.request.tolist(), part.event_time.tolist(), part.user.tolist(),
        part.query.tolist(), part.item_id.tolist(), part.position.tolist(),
        part.clicked.tolist(), part.added_to_cart.tolist(),
        part.ordered.tolist()):
      rows.append((f"r{r:07d}", t, f"u{u:05d}", texts[q], i, p, c, a, o))
    path = os.path.join(logs_dir, log_shard_name(shard, num_shards))
    _write_atomically(path, rows, compress=True)
    paths.append(path)
  return paths


def write_judgments(path: str, rng: np.random.Generator, world: World) -> int:
  """Writes `query,item_id,relevance` for the held-out queries; returns rows."""
  rows = [(features.QUERY, features.ITEM_ID, features.RELEVANCE)]
  for query, grades in zip(world.judged_queries, world.judged_grades):
    rows += [(query.text, int(world.catalog.item_ids[i]), float(grades[i]))
             for i in judgment_pool(rng, grades)]
  _write_atomically(path, rows, compress=False)
  return len(rows) - 1


def _check_sizes(num_items, num_queries, num_judged_queries, num_requests,
                 page_size, num_log_shards, dirt_fraction, seed):
  """Rejects sizes that cannot make a sensible sample, naming the argument."""
  positive = dict(num_items=num_items, num_queries=num_queries,
                  num_judged_queries=num_judged_queries,
                  num_requests=num_requests, page_size=page_size,
                  num_log_shards=num_log_shards)
  for name, value in positive.items():
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if seed < 0:
    raise ValueError(f"seed must be non-negative, got {seed}")
  if page_size > num_items:
    raise ValueError(f"page_size {page_size} exceeds num_items {num_items}")
  if num_requests < num_queries:
    raise ValueError(f"num_requests {num_requests} < num_queries "
                     f"{num_queries}: every training query needs a request")
  if num_log_shards > num_requests:
    raise ValueError(f"num_log_shards {num_log_shards} exceeds num_requests "
                     f"{num_requests}")
  if not 0.0 <= dirt_fraction <= 0.2:
    raise ValueError(f"dirt_fraction must be in [0, 0.2], got {dirt_fraction}")


def simulate(out_dir: str,
             *,
             seed: int = 7,
             num_items: int = 2000,
             num_queries: int = 300,
             num_judged_queries: int = 60,
             num_requests: int = 3000,
             page_size: int = 12,
             num_log_shards: int = 2,
             dirt_fraction: float = 0.005) -> dict:
  """Writes the sample catalogue, search logs and judgments under `out_dir`.

  The defaults make a set the whole pipeline trains on in minutes on two
  cores (about 36k impressions); e.g. num_items=300, num_queries=40,
  num_judged_queries=10, num_requests=400 makes a tiny one for tests.

  Args:
    out_dir: Gets catalog.csv, logs/search_logs-0000N-of-0000M.csv.gz and
      judgments.csv (created if needed; these files are replaced).
    seed: Same seed and sizes, byte-identical files.
    num_items: Catalogue size.
    num_queries: Distinct training queries in the logs (each at least once).
    num_judged_queries: Held-out queries, judged, never in the logs.
    num_requests: Search requests (pages) in the logs.
    page_size: Items per page (impressions per request).
    num_log_shards: Log files, cut in time order at request boundaries.
    dirt_fraction: Share of rows spoiled (empty query, unknown item, order
      without click, duplicate row), split evenly over the kinds.

  Returns:
    A JSON-ready summary: paths written, counts of items, queries,
    judgments, requests, impressions (rows written, dirt included), clicks,
    carts and orders in the written rows, and `dirty_rows` by kind.
  """
  _check_sizes(num_items, num_queries, num_judged_queries, num_requests,
               page_size, num_log_shards, dirt_fraction, seed)
  os.makedirs(out_dir, exist_ok=True)
  world = build_world(seed, num_items, num_queries, num_judged_queries)
  logging.info("Simulated %d items, %d training and %d judged queries",
               num_items, len(world.queries), len(world.judged_queries))
  impressions = simulate_impressions(_stream(seed, _LOG_STREAM), world.catalog,
                                     world.queries, world.grades, num_requests,
                                     page_size)
  impressions, dirt = add_dirt(_stream(seed, _DIRT_STREAM), impressions,
                               world.catalog, dirt_fraction)
  catalog_path = os.path.join(out_dir, "catalog.csv")
  judgments_path = os.path.join(out_dir, "judgments.csv")
  write_catalog(catalog_path, world.catalog)
  log_paths = write_logs(os.path.join(out_dir, "logs"), impressions,
                         world.queries, num_log_shards)
  num_judgments = write_judgments(judgments_path,
                                  _stream(seed, _JUDGMENT_STREAM), world)
  summary = {
      "catalog": catalog_path,
      "logs": log_paths,
      "judgments": judgments_path,
      "seed": seed,
      "items": num_items,
      "queries": len(world.queries),
      "judged_queries": len(world.judged_queries),
      "judgment_rows": num_judgments,
      "requests": num_requests,
      "impressions": len(impressions.request),
      "clicks": int(impressions.clicked.sum()),
      "carts": int(impressions.added_to_cart.sum()),
      "orders": int(impressions.ordered.sum()),
      "dirty_rows": dirt,
  }
  logging.info("Wrote %d impressions (%d clicks, %d orders) to %s",
               summary["impressions"], summary["clicks"], summary["orders"],
               out_dir)
  return summary
