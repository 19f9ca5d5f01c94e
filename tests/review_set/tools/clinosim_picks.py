"""Which clinosim Encounters become review cases, and the clinician's answer for each.

  python clinosim_picks.py preview SUMMARY.jsonl
  python clinosim_picks.py write SUMMARY.jsonl picks.toml
Selection: class + first reasonCode prefix (+ filter), n-th match in file order."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def has(r, key, word):
    return any(word.lower() in x.lower() for x in r[key])


# (class, reason prefix or None for text-only reason, filter, n, job, rationale, ambiguous)
PICKS = [
    # ---- inpatient
    (
        "IMP",
        "N10",
        lambda r: has(r, "dx", "N10") and r["dx"][0].startswith("N10"),
        0,
        "treat",
        "Admission for acute pyelonephritis with IV ceftriaxone then ciprofloxacin: inpatient treatment",
        False,
    ),
    (
        "IMP",
        "N10",
        lambda r: r["dx"][0].startswith("N20"),
        0,
        "treat",
        "Admission for pyelonephritis with a kidney stone (discharge diagnosis N20.0), IV antibiotics: inpatient treatment",
        False,
    ),
    (
        "IMP",
        "J44",
        lambda r: True,
        0,
        "treat",
        "Admission for acute exacerbation of COPD known for over a decade: non-invasive ventilation, oxygen, bronchodilators: treating a flare",
        False,
    ),
    (
        "IMP",
        "J44",
        lambda r: True,
        1,
        "treat",
        "Short admission for COPD exacerbation with nebulised bronchodilators and oxygen: treatment of a flare of a known disease",
        False,
    ),
    (
        "IMP",
        "I63",
        lambda r: True,
        1,
        "treat",
        "Admission for acute ischaemic stroke with oxygen, bladder catheter, antithrombotics: inpatient stroke care (the workup serves treatment)",
        False,
    ),
    (
        "IMP",
        "A41",
        lambda r: True,
        0,
        "treat",
        "Three-week admission for sepsis with central line and IV antibiotics: inpatient treatment",
        False,
    ),
    (
        "IMP",
        "J45",
        lambda r: r["age"] < 18,
        0,
        "treat",
        "Child admitted for an exacerbation of known asthma: oxygen, salbutamol, ipratropium, steroids",
        False,
    ),
    (
        "IMP",
        "K92",
        lambda r: True,
        0,
        "treat",
        "Admission for upper GI bleeding from an acute gastric ulcer with transfusion and NG tube: treatment (endoscopy finds the source but the admission is to stop the bleeding)",
        False,
    ),
    (
        "IMP",
        "J18",
        lambda r: r["age"] >= 18,
        0,
        "treat",
        "Admission for pneumococcal pneumonia with IV antibiotics and oxygen",
        False,
    ),
    (
        "IMP",
        "S67",
        lambda r: True,
        0,
        "treat",
        "Admission for a crushing hand injury with replantation surgery (clinosim's discharge diagnosis 'viral pneumonia' and a foot-replantation code are internally inconsistent, but every coded element is treatment)",
        False,
    ),
    (
        "IMP",
        "I48",
        lambda r: True,
        0,
        "treat",
        "Admission for atrial fibrillation known since 2015 (rate control with diltiazem, anticoagulation): treating a decompensation of a known condition",
        False,
    ),
    (
        "IMP",
        "R53",
        lambda r: True,
        0,
        "diagnose",
        "11-day admission whose principal diagnosis stays 'weakness' (R53.1) with broad labs: an admission to work up a symptom; could also be read as supportive treatment",
        True,
    ),
    (
        "IMP",
        "I80",
        lambda r: True,
        0,
        "treat",
        "Admission for deep-vein thrombosis started on rivaroxaban with compression: treatment",
        False,
    ),
    (
        "IMP",
        "M80",
        lambda r: True,
        0,
        "treat",
        "Admission for an osteoporotic vertebral collapse with analgesia: treatment of a fracture",
        False,
    ),
    (
        "IMP",
        "I26",
        lambda r: True,
        0,
        "treat",
        "Admission for pulmonary embolism with anticoagulation, oxygen and echo: treatment",
        False,
    ),
    (
        "IMP",
        "J10",
        lambda r: True,
        0,
        "treat",
        "Admission for influenza complicated by pneumococcal pneumonia with IV antibiotics: treatment",
        False,
    ),
    (
        "IMP",
        "I21",
        lambda r: True,
        0,
        "treat",
        "Admission for acute myocardial infarction with percutaneous coronary intervention: treatment",
        False,
    ),
    (
        "IMP",
        "K81",
        lambda r: True,
        0,
        "treat",
        "Admission for acute cholecystitis with laparoscopic cholecystectomy: surgery",
        False,
    ),
    # ---- emergency
    (
        "EMER",
        "T14",
        lambda r: has(r, "procs", "Skin closure"),
        0,
        "treat",
        "ED visit for a wound closed with sutures under lidocaine: wound repair",
        False,
    ),
    (
        "EMER",
        "M54",
        lambda r: has(r, "sr", "Lumbar_Xray"),
        0,
        "diagnose",
        "ED visit for low back pain with lumbar X-ray ordered and analgesia: assessment of a new complaint",
        True,
    ),
    (
        "EMER",
        "J06",
        lambda r: True,
        0,
        "diagnose",
        "Child's ED visit for an upper respiratory infection with chest X-ray and antipyretic: acute illness assessed",
        False,
    ),
    (
        "EMER",
        "A08",
        lambda r: has(r, "procs", "iv_line"),
        0,
        "treat",
        "ED visit for viral gastroenteritis: IV line, IV fluids and labs: rehydration is the job; the diagnosis is clinical",
        True,
    ),
    (
        "EMER",
        "S93",
        lambda r: has(r, "procs", "splint"),
        0,
        "treat",
        "ED visit for an ankle sprain: X-ray, posterior splint, cold pack and dressing: injury treated with splinting",
        False,
    ),
    (
        "EMER",
        "S93",
        lambda r: not has(r, "procs", "splint") and has(r, "sr", "Ankle_Xray"),
        0,
        "diagnose",
        "ED visit for an ankle sprain with ankle X-ray to exclude fracture, cold pack and dressing only: mainly assessment",
        True,
    ),
    (
        "EMER",
        "R07",
        lambda r: r["age"] >= 18 and has(r, "sr", "Troponin"),
        0,
        "diagnose",
        "ED chest-pain visit with troponin, ECG (and chest X-ray), leaving with 'other chest pain': workup",
        False,
    ),
    (
        "EMER",
        "R55",
        lambda r: has(r, "sr", "CT_Head"),
        0,
        "diagnose",
        "ED visit for syncope with ECG, troponin, bloods and head CT: workup",
        False,
    ),
    (
        "EMER",
        "R42",
        lambda r: has(r, "sr", "CT_Head"),
        0,
        "diagnose",
        "ED visit for dizziness with head CT and labs, symptomatic meclizine/ondansetron: workup of a symptom",
        False,
    ),
    (
        "EMER",
        "G43",
        lambda r: not has(r, "sr", "CT_Head"),
        0,
        "treat",
        "ED visit for migraine treated with IV ketorolac and no imaging: abortive treatment of a headache whose cause is clinically clear",
        True,
    ),
    (
        "EMER",
        "T78",
        lambda r: has(r, "meds", "Epinephrine"),
        0,
        "treat",
        "ED visit for an allergic reaction treated with epinephrine and antihistamine: emergency treatment",
        False,
    ),
    (
        "EMER",
        "S06",
        lambda r: r["age"] >= 18,
        0,
        "diagnose",
        "ED visit for a head injury with head CT, concussion without LOC: assessment of an injury",
        False,
    ),
    (
        "EMER",
        "R04",
        lambda r: has(r, "procs", "packing"),
        0,
        "treat",
        "ED visit for epistaxis treated with silver nitrate cautery and nasal packing",
        False,
    ),
    (
        "EMER",
        "S62",
        lambda r: has(r, "procs", "splint"),
        0,
        "treat",
        "ED visit for a wrist/hand fracture: X-ray and splint: fracture care",
        False,
    ),
    (
        "EMER",
        "N39",
        lambda r: True,
        0,
        "diagnose",
        "ED visit where a urinary tract infection is diagnosed and nitrofurantoin started: acute complaint assessed",
        False,
    ),
    (
        "EMER",
        "T30",
        lambda r: True,
        0,
        "treat",
        "ED visit for a burn with cooling, dressing and analgesia: burn care",
        False,
    ),
    (
        "EMER",
        "R33",
        lambda r: True,
        0,
        "treat",
        "ED visit for acute urinary retention relieved by bladder catheter (ultrasound ordered): treatment",
        False,
    ),
    (
        "EMER",
        "N23",
        lambda r: True,
        0,
        "treat",
        "ED visit for renal colic given ketorolac, ondansetron and IV fluids, no imaging: pain relief of a clinically evident colic",
        True,
    ),
    (
        "EMER",
        "R10",
        lambda r: has(r, "sr", "CT"),
        0,
        "diagnose",
        "ED visit for abdominal pain with X-ray, ultrasound and CT ordered: workup",
        False,
    ),
    (
        "EMER",
        "V89",
        lambda r: has(r, "sr", "CT_Head"),
        0,
        "diagnose",
        "ED evaluation after a motor-vehicle accident: head CT and cervical-spine X-ray, sling only: trauma assessment",
        False,
    ),
    (
        "EMER",
        "W19",
        lambda r: has(r, "sr", "CT_Head"),
        0,
        "diagnose",
        "ED visit for an older person's fall with head CT and X-ray of the affected area: injury assessment",
        False,
    ),
    (
        "EMER",
        "F41",
        lambda r: True,
        0,
        "diagnose",
        "ED visit for a panic attack (F41.0): presenting symptoms assessed and a panic disorder diagnosis given",
        True,
    ),
    (
        "EMER",
        "S43",
        lambda r: True,
        0,
        "treat",
        "ED visit for shoulder dislocation with closed reduction under morphine: treatment",
        False,
    ),
    (
        "EMER",
        "W54",
        lambda r: True,
        0,
        "treat",
        "ED visit for a dog bite: wound care, amoxicillin-clavulanate, tetanus: treatment",
        False,
    ),
    (
        "EMER",
        "T15",
        lambda r: True,
        0,
        "treat",
        "ED visit for a corneal foreign body removed with needle and burr: treatment",
        False,
    ),
    (
        "EMER",
        "J45",
        lambda r: True,
        0,
        "treat",
        "ED visit for an asthma exacerbation treated with nebulisers and prednisone",
        False,
    ),
    (
        "EMER",
        None,
        lambda r: has(r, "reason", "dyspnea") and has(r, "prior", "J44"),
        0,
        "treat",
        "ED visit with only a free-text complaint (worsening dyspnoea, sputum, wheeze) in known COPD and no coded findings: a COPD flare being treated",
        True,
    ),
    (
        "EMER",
        None,
        lambda r: has(r, "reason", "speech"),
        0,
        "diagnose",
        "ED visit with only a free-text complaint of sudden weakness and speech difficulty, nothing else coded: a suspected stroke being worked up",
        True,
    ),
    # ---- ambulatory
    (
        "AMB",
        "I10",
        lambda r: r["meds"],
        0,
        "keep_well",
        "Typed 'Encounter for check-up' for hypertension known since 2018, meds reconciled: chronic-disease follow-up",
        False,
    ),
    (
        "AMB",
        "I10",
        lambda r: r["obs"] >= 8 and r["age"] < 40,
        0,
        "keep_well",
        "Hypertension follow-up of a young adult with vitals: chronic-disease maintenance",
        False,
    ),
    (
        "AMB",
        "Z00",
        lambda r: r["age"] is not None and r["age"] < 3 and r["imm"],
        0,
        "keep_well",
        "Toddler check-up coded Z00 (an adult-exam category code, non-billable, used by the generator for a child) with MMR: well-child care",
        False,
    ),
    (
        "AMB",
        "E78",
        lambda r: r["sr"],
        0,
        "keep_well",
        "Hyperlipidaemia follow-up with statin and liver/lipid labs: chronic-disease monitoring",
        False,
    ),
    (
        "AMB",
        "Z00",
        lambda r: r["type"].startswith("270427003") and r["imm"],
        0,
        "keep_well",
        "Patient-initiated general exam (Z00) with a COVID-19 vaccine: prevention",
        False,
    ),
    (
        "AMB",
        "N18",
        lambda r: not has(r, "meds", "Leuprolide"),
        0,
        "keep_well",
        "CKD follow-up with renal labs and bicarbonate/vitamin D: chronic-disease monitoring",
        False,
    ),
    (
        "AMB",
        "E11",
        lambda r: True,
        0,
        "keep_well",
        "Type 2 diabetes (known since 2014) follow-up with metformin continued: chronic care",
        False,
    ),
    (
        "AMB",
        "E11",
        lambda r: has(r, "sr", "4548-4"),
        0,
        "keep_well",
        "Diabetes follow-up with HbA1c ordered: chronic-disease monitoring",
        False,
    ),
    (
        "AMB",
        "Z23",
        lambda r: r["imm"],
        0,
        "keep_well",
        "Immunization visit (Z23) with influenza vaccine: prevention",
        False,
    ),
    (
        "AMB",
        "Z23",
        lambda r: not r["imm"],
        0,
        "keep_well",
        "Visit coded Z23 (immunization) but no Immunization resource linked: the reason alone says prevention",
        False,
    ),
    (
        "AMB",
        "C18",
        lambda r: has(r, "procs", "96413"),
        0,
        "treat",
        "Typed 'Encounter for check-up' but CPT 96413 chemotherapy administration with FOLFOX for colon cancer: oncology treatment outranks the generic type",
        False,
    ),
    (
        "AMB",
        "C61",
        lambda r: has(r, "meds", "Leuprolide"),
        0,
        "treat",
        "Prostate cancer visit with leuprolide (androgen deprivation) given: hormonal cancer therapy",
        False,
    ),
    (
        "AMB",
        "C50",
        lambda r: has(r, "meds", "Trastuzumab"),
        0,
        "treat",
        "Trastuzumab infusion for breast cancer: oncology treatment",
        False,
    ),
    (
        "AMB",
        "C71",
        lambda r: True,
        0,
        "treat",
        "Glioma visit with temozolomide chemotherapy: oncology treatment",
        False,
    ),
    (
        "AMB",
        "C34",
        lambda r: has(r, "procs", "96413"),
        0,
        "treat",
        "Carboplatin/pemetrexed administration for lung cancer: chemotherapy",
        False,
    ),
    (
        "AMB",
        "C67",
        lambda r: not r["procs"],
        0,
        "keep_well",
        "Bladder-cancer follow-up (known since 2021) with no cancer therapy given, only tamsulosin: surveillance",
        False,
    ),
    (
        "AMB",
        "J44",
        lambda r: True,
        0,
        "keep_well",
        "COPD follow-up with maintenance tiotropium: chronic-disease care",
        False,
    ),
    (
        "AMB",
        "Z12",
        lambda r: has(r, "reason", "Z12.11"),
        0,
        "keep_well",
        "Patient-initiated colon-cancer screening visit (Z12.11): prevention",
        False,
    ),
    (
        "AMB",
        "Z12",
        lambda r: has(r, "reason", "Z12.31"),
        0,
        "keep_well",
        "Screening-mammogram visit (Z12.31): prevention",
        False,
    ),
    (
        "AMB",
        "Z13",
        lambda r: True,
        0,
        "keep_well",
        "Screening visit for eye and ear disorders (Z13.5): prevention",
        False,
    ),
    (
        "AMB",
        "Z09",
        lambda r: True,
        0,
        "keep_well",
        "Follow-up examination after completed treatment (Z09) with labs and zoster vaccine: follow-up",
        False,
    ),
    (
        "AMB",
        "I48",
        lambda r: has(r, "meds", "Warfarin"),
        0,
        "keep_well",
        "Atrial fibrillation (known since 2010) follow-up on warfarin, flu shot: chronic care",
        False,
    ),
    (
        "AMB",
        "Z34",
        lambda r: True,
        0,
        "keep_well",
        "Supervision of normal pregnancy (Z34.90) with iron and folic acid: antenatal care",
        False,
    ),
    (
        "AMB",
        "F03",
        lambda r: True,
        0,
        "keep_well",
        "Dementia follow-up (known since 2021): chronic care",
        False,
    ),
    (
        "AMB",
        "E03",
        lambda r: True,
        0,
        "keep_well",
        "Hypothyroidism follow-up on levothyroxine: chronic care",
        False,
    ),
]


def select(rows):
    used, out = set(), []
    for cls, rc, filt, n, job, why, amb in PICKS:

        def rcode(r):
            return r["reason"][0].split()[0] if r["reason"] else "None"

        cands = [
            r
            for r in rows
            if r["class"] == cls
            and r["enc"] not in used
            and (
                (rc is None and rcode(r) == "None") or (rc is not None and rcode(r).startswith(rc))
            )
            and filt(r)
        ]
        if not cands:
            raise SystemExit(f"no candidate for {cls} {rc}")
        r = cands[min(n, len(cands) - 1)]
        used.add(r["enc"])
        out.append((r, job, why, amb))
    return out


def main():
    cmd = sys.argv[1]
    rows = [json.loads(line) for line in Path(sys.argv[2]).read_text().splitlines()]
    sel = select(rows)
    if cmd == "preview":
        for r, job, _why, _amb in sel:
            print(
                f"{job:10} {r['class']} {r['enc']} age{r['age']} {r['reason'][:1]} | dx={r['dx'][:3]} | procs={r['procs'][:4]} | meds={r['meds'][:5]} | sr={r['sr'][:4]} | imm={r['imm'][:2]}"
            )
        print(len(sel))
        return
    lines = []
    for r, job, why, amb in sel:
        lines += (
            ["[[pick]]", f'id = "{r["enc"]}"', f'job = "{job}"']
            + (["ambiguous = true"] if amb else [])
            + [f"rationale = {json.dumps(why)}", ""]
        )
    Path(sys.argv[3]).write_text("\n".join(lines))
    print(len(sel), "picks")


if __name__ == "__main__":
    main()
