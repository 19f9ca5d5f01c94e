"""Which Synthea resources become review cases, and the clinician's answer for each.

Selection is by encounter type + Synthea's reason text (+ a filter), taking the n-th match in
file order, so re-running on the same generator output picks the same resources.
  python synthea_picks.py preview SYN_DIR   # show what each selector picks
  python synthea_picks.py write SYN_DIR     # write picks.toml for synthea_extract.py build"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthea_extract import PatientBundle, summarize_encounter


def dis(r):  # prior disorders only
    return [p for p in r["prior"] if "(disorder)" in p]


def has_prior(r, word):
    return any(word.lower() in p.lower() for p in r["prior"])


# (kind, type code, reason text or None, filter, n, job, rationale, ambiguous)
E = "Encounter"
PICKS = [
    # wellness / general examination
    (
        E,
        "162673000",
        "Medication_Review_Due",
        lambda r: r["age"] == 0 and r["imm"],
        0,
        "keep_well",
        "Infant general examination with routine immunizations (Synthea's reason text 'Medication_Review_Due' is a generator state, not a clinical reason): well-child care",
        False,
    ),
    (
        E,
        "162673000",
        "Medication_Review_Due",
        lambda r: 5 <= r["age"] <= 12 and r["imm"],
        1,
        "keep_well",
        "School-age general examination with vaccines and growth measurements: well-child care",
        False,
    ),
    (
        E,
        "162673000",
        "Medication_Review_Due",
        lambda r: (
            30 <= r["age"] <= 50
            and any("Depression screening" in p for p in r["procs"])
            and not any("(disorder) [active]" in c for c in r["conds_here"])
        ),
        2,
        "keep_well",
        "Adult annual examination with screening assessments (depression, anxiety, substance use), no new disorder: prevention",
        False,
    ),
    (
        E,
        "162673000",
        "Medication_Review_Due",
        lambda r: r["age"] >= 65 and has_prior(r, "hypertension") and r["dr"],
        0,
        "keep_well",
        "Older adult's annual examination with medication reconciliation, labs and screening in a patient with long-standing chronic conditions: prevention and chronic-care review",
        False,
    ),
    # substance use
    (
        E,
        "185347001",
        "opioid_drug_addiction",
        lambda r: (
            any("Rehabilitation therapy" in p for p in r["procs"])
            and has_prior(r, "Dependent drug abuse")
        ),
        3,
        "treat",
        "Outpatient session of rehabilitation therapy for known drug dependence: substance-use treatment",
        False,
    ),
    (
        E,
        "185347001",
        "opioid_drug_addiction",
        lambda r: any("Dependent drug abuse" in c for c in r["conds_here"]),
        1,
        "treat",
        "Problem visit recording drug dependence with rehabilitation therapy started: substance-use treatment",
        False,
    ),
    (
        E,
        "56876005",
        "opioid_drug_addiction",
        lambda r: True,
        4,
        "treat",
        "Inpatient drug rehabilitation and detoxification admission: substance-use treatment",
        False,
    ),
    # contraception
    (
        E,
        "308335008",
        "contraception_care_reason",
        lambda r: any("Intramuscular injection" in p for p in r["procs"]),
        5,
        "keep_well",
        "Contraceptive injection visit (typed only 'Patient encounter procedure'; the IM injection is the depot contraceptive): contraception is preventive",
        False,
    ),
    (
        E,
        "698314001",
        "contraception_care_reason",
        lambda r: r["meds"],
        3,
        "keep_well",
        "Visit typed 'Consultation for treatment' whose only content is an oral contraceptive prescription: contraceptive care is preventive",
        False,
    ),
    # dental
    (
        E,
        "185349003",
        "dental_referral",
        lambda r: not any("surgical" in p for p in r["procs"]),
        4,
        "keep_well",
        "Dental check-up with exam, scaling/cleaning and bitewings (caries noted): preventive dentistry",
        False,
    ),
    (
        E,
        "185349003",
        "dental_referral",
        lambda r: any("fluoride" in p.lower() for p in r["procs"]),
        0,
        "keep_well",
        "Dental check-up with cleaning and fluoride application: preventive dentistry",
        False,
    ),
    # acute symptom visits
    (
        E,
        "185345009",
        "Sinusitis Condition",
        lambda r: r["conds_here"],
        2,
        "diagnose",
        "Symptom visit where viral sinusitis was diagnosed: a new acute complaint assessed",
        False,
    ),
    (
        E,
        "185345009",
        "Sinusitis Condition",
        lambda r: not r["conds_here"] and not r["procs"],
        1,
        "diagnose",
        "Visit typed 'Encounter for symptom' with no coded findings: the patient presented with a symptom to be assessed",
        False,
    ),
    (
        E,
        "185345009",
        "Sore Throat Condition",
        lambda r: r["procs"],
        3,
        "diagnose",
        "Sore-throat visit with throat culture, diagnosed acute viral pharyngitis: finding out what is wrong",
        False,
    ),
    (
        E,
        "185345009",
        "Sore Throat Condition",
        lambda r: not r["procs"],
        2,
        "diagnose",
        "Sore-throat visit, acute viral pharyngitis diagnosed: acute complaint assessed",
        False,
    ),
    (
        E,
        "185345009",
        "Bronchitis_Infection",
        lambda r: r["meds"],
        4,
        "diagnose",
        "Symptom visit with respiratory function measurement, new acute bronchitis, symptomatic medicine: diagnostic visit for an acute illness",
        False,
    ),
    (
        E,
        "185345009",
        "Gets_Ear_Infection",
        lambda r: r["meds"],
        5,
        "diagnose",
        "Child's symptom visit with new otitis media and antibiotics: the visit establishes the diagnosis; antibiotic is the routine close",
        False,
    ),
    (
        E,
        "185345009",
        "Gets_Ear_Infection",
        lambda r: r["meds"] and r["age"] >= 3,
        1,
        "diagnose",
        "Symptom visit with otitis media diagnosed and treated with oral antibiotic: diagnostic visit for an acute illness",
        False,
    ),
    (
        E,
        "185345009",
        "pneumonia",
        lambda r: r["age"] >= 18,
        0,
        "diagnose",
        "Symptom visit with chest X-ray and sputum culture establishing pneumonia, oral antibiotics: workup of an acute illness",
        False,
    ),
    (
        E,
        "185345009",
        "migraine",
        lambda r: not has_prior(r, "migraine"),
        0,
        "diagnose",
        "First presentation with migraine, diagnosed and given sumatriptan: new diagnosis",
        False,
    ),
    (
        E,
        "185345009",
        "gerd",
        lambda r: True,
        0,
        "diagnose",
        "Symptom visit where GERD was diagnosed and omeprazole started: new diagnosis",
        False,
    ),
    (
        E,
        "185345009",
        "Sleep Disorder",
        lambda r: r["conds_here"],
        0,
        "diagnose",
        "Symptom visit for a sleep problem with sleep-apnoea assessment and referral to a sleep clinic: diagnostic workup",
        False,
    ),
    (
        E,
        "185345009",
        "Suspected COVID",
        lambda r: True,
        0,
        "diagnose",
        "Visit for cough/dyspnoea with suspected COVID-19: symptom workup",
        False,
    ),
    (
        E,
        "185345009",
        "allergic_rhinitis",
        lambda r: r["conds_here"],
        0,
        "diagnose",
        "Symptom visit diagnosing seasonal allergic rhinitis, antihistamine given: new diagnosis",
        False,
    ),
    # pregnancy
    (
        E,
        "424619006",
        "Become_Pregnant",
        lambda r: (
            any("fundal height" in p for p in r["procs"])
            and not any("termination" in p for p in r["procs"])
        ),
        6,
        "keep_well",
        "Routine prenatal visit (fundal height, fetal heart): supervision of pregnancy is preventive care",
        False,
    ),
    (
        E,
        "424441002",
        "Become_Pregnant",
        lambda r: len(r["procs"]) >= 4,
        0,
        "keep_well",
        "Initial prenatal visit with pregnancy test, viability ultrasound and booking bloods: start of routine antenatal care",
        False,
    ),
    (
        E,
        "169762003",
        "Become_Pregnant",
        lambda r: True,
        2,
        "keep_well",
        "Postnatal check with examination and depression screening: routine postpartum care",
        False,
    ),
    (
        E,
        "270427003",
        "Become_Pregnant",
        lambda r: any("termination" in p for p in r["procs"]),
        0,
        "treat",
        "Patient-initiated visit with counselling and induced termination of pregnancy: a procedure performed; judged treat, though pregnancy is not a disease",
        True,
    ),
    (
        E,
        "183460006",
        "Become_Pregnant",
        lambda r: r["procs"],
        0,
        "treat",
        "Obstetric emergency admission for labour and delivery (with an obstetric intervention): intrapartum care judged treat; others would call a normal delivery part of routine maternity care",
        True,
    ),
    # allergy
    (
        E,
        "371883000",
        "allergy_unspecified",
        lambda r: True,
        7,
        "treat",
        "Outpatient subcutaneous allergen immunotherapy for known perennial allergic rhinitis: disease-modifying therapy",
        False,
    ),
    (
        E,
        "185347001",
        "Allergy_Unspecified",
        lambda r: r["procs"],
        0,
        "diagnose",
        "Problem visit with allergy screening tests and an epinephrine auto-injector prescribed: allergy workup",
        False,
    ),
    (
        E,
        "170838006",
        "allergy_unspecified",
        lambda r: True,
        0,
        "keep_well",
        "Allergic disorder follow-up assessment (repeat allergy tests) for known allergic rhinitis: monitoring",
        False,
    ),
    # ED, pain, opioids
    (
        E,
        "50849002",
        "Enter_Directed_Use_Condition1",
        lambda r: r["procs"],
        2,
        "treat",
        "Visit (Synthea types it as an ED admission) for impacted wisdom teeth with extraction and short opioid course: a procedure that fixes the problem",
        False,
    ),
    (
        E,
        "50849002",
        "Enter_Directed_Use_Condition3",
        lambda r: has_prior(r, "migraine"),
        0,
        "treat",
        "ED visit for a flare of known chronic migraine treated with an opioid analgesic: treating a flare of a known condition",
        False,
    ),
    (
        E,
        "183452005",
        "Enter_Directed_Use_Condition2",
        lambda r: True,
        1,
        "treat",
        "Emergency visit for chronic pain, long-acting oxycodone prescribed: pain treatment",
        False,
    ),
    (
        E,
        "50849002",
        "Addiction_Overdose",
        lambda r: True,
        0,
        "treat",
        "ED visit for a drug overdose in a patient with known drug dependence: emergency treatment of poisoning",
        False,
    ),
    (
        E,
        "308335008",
        "Chronic_Pain_Reason",
        lambda r: any("Movement therapy" in p for p in r["procs"]),
        0,
        "treat",
        "Movement therapy session for chronic pain: a therapy session",
        False,
    ),
    (
        E,
        "185347001",
        "Chronic_Pain_Reason",
        lambda r: r["meds"],
        0,
        "diagnose",
        "Problem visit where chronic low back pain is first recorded, PEG pain scale done and ibuprofen started: assessment of a new complaint",
        True,
    ),
    (
        E,
        "185347001",
        "Sepsis",
        lambda r: True,
        0,
        "treat",
        "Emergency visit for sepsis: emergency treatment",
        False,
    ),
    (
        E,
        "50849002",
        "Acute_Allergic_Reaction",
        lambda r: True,
        0,
        "treat",
        "ED visit for an acute allergic reaction treated with epinephrine injection and steroids: emergency treatment",
        False,
    ),
    (
        E,
        "32485007",
        "bipolar",
        lambda r: has_prior(r, "bipolar"),
        0,
        "treat",
        "Emergency admission for a manic episode in known bipolar disorder: inpatient treatment of a relapse",
        False,
    ),
    # injuries
    (
        E,
        "50849002",
        "Sprain_Injury",
        lambda r: r["age"] >= 12,
        0,
        "diagnose",
        "ED visit for an ankle/wrist sprain, analgesic and physiotherapy plan, no procedure: mainly assessment to exclude a fracture; some would call it treat",
        True,
    ),
    (
        E,
        "50849002",
        "Laceration_Injury",
        lambda r: any("Suture" in p for p in r["procs"]),
        1,
        "treat",
        "ED visit for a facial laceration that was sutured: wound repair",
        False,
    ),
    (
        E,
        "50849002",
        "Broken_Bone_Injury",
        lambda r: any("immobilization" in p for p in r["procs"]) and r["age"] >= 18,
        0,
        "treat",
        "ED visit for a fracture: X-ray then immobilisation and analgesia; the X-ray only confirms an obvious injury, the job is fracture care",
        False,
    ),
    (
        E,
        "185349003",
        "broken_bone",
        lambda r: True,
        1,
        "keep_well",
        "Check-up after a recent fracture with nothing else coded: fracture follow-up",
        False,
    ),
    (
        E,
        "50849002",
        "Concussion_Injury",
        lambda r: True,
        0,
        "diagnose",
        "ED visit after a head injury diagnosed as concussion without LOC, with a head-injury rehabilitation plan: assessment of an injury",
        True,
    ),
    (
        E,
        "185349003",
        "concussion_injury",
        lambda r: True,
        0,
        "keep_well",
        "Check-up after a concussion: injury follow-up",
        False,
    ),
    (
        E,
        "50849002",
        "Burn_Injury",
        lambda r: True,
        0,
        "treat",
        "ED visit for a superficial burn with burn care: wound treatment",
        False,
    ),
    (
        E,
        "50849002",
        "Gunshot_Injury",
        lambda r: True,
        0,
        "treat",
        "ED visit for a gunshot wound: emergency trauma care",
        False,
    ),
    (
        E,
        "183495009",
        None,
        lambda r: True,
        0,
        "treat",
        "Non-urgent orthopaedic admission (joint surgery): surgical treatment",
        False,
    ),
    # chronic disease follow-up
    (
        E,
        "390906007",
        "hypertension_dx",
        lambda r: r["meds"] and has_prior(r, "hypertension"),
        1,
        "keep_well",
        "Follow-up visit for known essential hypertension with BP check and antihypertensive: chronic-disease maintenance",
        False,
    ),
    (
        E,
        "390906007",
        "hyperlipidemia",
        lambda r: r["dr"],
        0,
        "keep_well",
        "Hyperlipidaemia follow-up with lipid panel and statin continued: chronic-disease monitoring",
        False,
    ),
    (
        E,
        "162673000",
        "hepatitis_c",
        lambda r: True,
        0,
        "keep_well",
        "Annual examination with depression/substance-use screening in a patient with known chronic hepatitis C whose direct-acting antiviral is prescribed at the visit: judged keep_well (preventive visit plus chronic-disease care); the antiviral course itself is curative treatment",
        True,
    ),
    (
        E,
        "162673000",
        "Bronchitis_Infection",
        lambda r: any("Depression screening" in p for p in r["procs"]),
        1,
        "keep_well",
        "General examination with screening procedures; the free-text reason 'Bronchitis_Infection' is a leftover generator state with no coded bronchitis at this visit: preventive visit",
        False,
    ),
    (
        E,
        "162673000",
        "Gets_Ear_Infection",
        lambda r: r["imm"],
        0,
        "keep_well",
        "Well-child general examination with vaccines; reason text 'Gets_Ear_Infection' is a generator state, no ear infection coded: prevention",
        False,
    ),
    (
        E,
        "448337001",
        "chf",
        lambda r: True,
        3,
        "keep_well",
        "Telemedicine check of known chronic heart failure with BP readings: remote monitoring of a chronic disease",
        False,
    ),
    (
        E,
        "185347001",
        "chf",
        lambda r: has_prior(r, "heart failure"),
        0,
        "keep_well",
        "Heart-failure clinic visit for known chronic heart failure: echocardiogram, HF tracking panel, medication reconciliation and diuretic/beta-blocker continued: chronic-disease management",
        True,
    ),
    (
        E,
        "185347001",
        "CHF Condition Start",
        lambda r: True,
        0,
        "treat",
        "Emergency visit with oxygen by mask and proning for acute heart failure: emergency treatment",
        False,
    ),
    (
        E,
        "308540004",
        "chf",
        lambda r: True,
        0,
        "treat",
        "Inpatient stay for heart failure with IV furosemide and oxygen: inpatient treatment",
        False,
    ),
    (
        E,
        "397821002",
        "cabg_history",
        lambda r: True,
        0,
        "treat",
        "ICU stay after cardiac surgery (extubation, transfusion): post-operative intensive care",
        False,
    ),
    (
        E,
        "36228007",
        None,
        lambda r: has_prior(r, "diabetes") or True,
        0,
        "keep_well",
        "Eye examination (acuity, IOP, slit lamp, gonioscopy, dilating drops) in a patient with known type 2 diabetes: diabetic eye surveillance",
        False,
    ),
    (
        E,
        "185347001",
        "anemia",
        lambda r: not has_prior(r, "anemia"),
        0,
        "diagnose",
        "Problem visit with CBC, blood smear and review of systems for anaemia not previously recorded: workup",
        False,
    ),
    (
        E,
        "185347001",
        "ADHD",
        lambda r: (
            any("attention deficit" in c for c in r["conds_here"])
            and not has_prior(r, "attention deficit")
        ),
        0,
        "diagnose",
        "Child's problem visit where attention deficit disorder is first recorded, with a behaviour-management plan: assessment and diagnosis",
        False,
    ),
    (
        E,
        "185347001",
        "ADHD",
        lambda r: any("Cognitive and behavioral therapy" in p for p in r["procs"]),
        2,
        "treat",
        "Cognitive behavioural therapy session for known ADHD: active therapy",
        False,
    ),
    (
        E,
        "185349003",
        "colon_cancer_screening",
        lambda r: True,
        1,
        "keep_well",
        "Check-up with colonoscopy for colon-cancer screening: prevention",
        False,
    ),
    (
        E,
        "185349003",
        "colorectal_adenoma",
        lambda r: True,
        1,
        "keep_well",
        "Surveillance colonoscopy after previous colorectal adenoma: follow-up surveillance",
        False,
    ),
    (
        E,
        "439708006",
        "home_health_reason",
        lambda r: True,
        2,
        "keep_well",
        "Home-health intake visit (assessment, individual care plan, care coordination) for a patient with chronic conditions: maintenance care; could be seen as the start of a treatment episode",
        True,
    ),
    (
        E,
        "32485007",
        "snf_reason",
        lambda r: True,
        0,
        "treat",
        "Skilled-nursing-facility admission with assessment, care plan and skilled nursing/ancillary services: post-acute skilled care judged treat; some would call it maintenance",
        True,
    ),
    (
        E,
        "185347001",
        "osteoarthritis",
        lambda r: True,
        0,
        "diagnose",
        "Problem visit where knee osteoarthritis is first recorded and naproxen started: new diagnosis",
        False,
    ),
    (
        E,
        "390906007",
        "Loss of teeth",
        lambda r: True,
        0,
        "treat",
        "Follow-up for tooth loss/dentures: dental restorative treatment",
        True,
    ),
]

# Claims: judged with the encounter and its context that the Claim points at.
C = "Claim"
PICKS += [
    (
        C,
        "162673000",
        "Medication_Review_Due",
        lambda r: 1 <= r["age"] <= 4 and r["imm"],
        3,
        "keep_well",
        "Claim for a toddler's general examination; linked encounter has routine vaccines and growth checks: well-child care",
        False,
    ),
    (
        C,
        "185345009",
        "Sinusitis Condition",
        lambda r: r["conds_here"],
        6,
        "diagnose",
        "Claim for a symptom visit; linked encounter diagnosed viral sinusitis: acute complaint assessed",
        False,
    ),
    (
        C,
        "424619006",
        "Become_Pregnant",
        lambda r: True,
        11,
        "keep_well",
        "Claim for a routine prenatal visit: antenatal care",
        False,
    ),
    (
        C,
        "50849002",
        "Laceration_Injury",
        lambda r: any("Suture" in p for p in r["procs"]),
        3,
        "treat",
        "Claim for an ED visit whose encounter shows a laceration sutured: wound repair",
        False,
    ),
    (
        C,
        "185347001",
        "opioid_drug_addiction",
        lambda r: r["procs"],
        20,
        "treat",
        "Claim for a rehabilitation-therapy session for drug dependence: substance-use treatment",
        False,
    ),
    (
        C,
        "390906007",
        "hypertension_dx",
        lambda r: r["meds"],
        4,
        "keep_well",
        "Claim for hypertension follow-up; encounter shows BP check and antihypertensive renewal: chronic-disease maintenance",
        False,
    ),
    (
        C,
        "185349003",
        "colon_cancer_screening",
        lambda r: True,
        4,
        "keep_well",
        "Claim for a screening colonoscopy visit: prevention",
        False,
    ),
    (
        C,
        "50849002",
        "Broken_Bone_Injury",
        lambda r: r["procs"],
        3,
        "treat",
        "Claim for an ED fracture visit with immobilisation: fracture care",
        False,
    ),
    (
        C,
        "371883000",
        "allergy_unspecified",
        lambda r: True,
        20,
        "treat",
        "Claim for an allergen immunotherapy session: therapy",
        False,
    ),
    (
        C,
        "185345009",
        "pneumonia",
        lambda r: True,
        2,
        "diagnose",
        "Claim for a symptom visit diagnosing pneumonia by X-ray and sputum culture: workup",
        False,
    ),
]

# ExplanationOfBenefit: a payer's view; Synthea's EOB carries only the encounter-type code, so the answer is what that code alone supports.
X = "ExplanationOfBenefit"
PICKS += [
    (
        X,
        "162673000",
        "Medication_Review_Due",
        lambda r: r["age"] >= 40,
        7,
        "keep_well",
        "EOB whose only line is 'General examination of patient': a routine examination",
        False,
    ),
    (
        X,
        "162673000",
        "Medication_Review_Due",
        lambda r: r["age"] < 2,
        2,
        "keep_well",
        "EOB for an infant's 'General examination of patient': well-child care",
        False,
    ),
    (
        X,
        "185349003",
        "dental_referral",
        lambda r: True,
        9,
        "keep_well",
        "EOB whose only line is 'Encounter for check up': a check-up",
        False,
    ),
    (
        X,
        "185347001",
        "opioid_drug_addiction",
        lambda r: True,
        30,
        "unclassified",
        "EOB whose only line is 'Encounter for problem', no diagnosis: nothing says whether the problem was being found, treated or followed",
        False,
    ),
    (
        X,
        "185347001",
        "ADHD",
        lambda r: True,
        5,
        "unclassified",
        "EOB with only 'Encounter for problem' and no diagnosis code: no basis to say",
        False,
    ),
    (
        X,
        "185345009",
        "Sore Throat Condition",
        lambda r: True,
        7,
        "diagnose",
        "EOB whose only line is 'Encounter for symptom': a patient presenting a symptom to be assessed",
        False,
    ),
    (
        X,
        "50849002",
        "Enter_Directed_Use_Condition3",
        lambda r: True,
        5,
        "unclassified",
        "EOB with only 'Emergency room admission' and no diagnosis: an ED visit could be workup or treatment",
        False,
    ),
    (
        X,
        "424619006",
        "Become_Pregnant",
        lambda r: True,
        20,
        "keep_well",
        "EOB whose only line is 'Prenatal visit': antenatal care",
        False,
    ),
    (
        X,
        "56876005",
        "opioid_drug_addiction",
        lambda r: True,
        9,
        "treat",
        "EOB whose only line is 'Drug rehabilitation and detoxification': substance-use treatment",
        False,
    ),
    (
        X,
        "698314001",
        "contraception_care_reason",
        lambda r: True,
        8,
        "treat",
        "EOB whose only line is 'Consultation for treatment': the code says treatment (the encounter behind it was contraception, which the EOB does not show)",
        True,
    ),
    (
        X,
        "390906007",
        "hyperlipidemia",
        lambda r: True,
        3,
        "keep_well",
        "EOB whose only line is 'Follow-up encounter': follow-up",
        False,
    ),
    (
        X,
        "448337001",
        "chf",
        lambda r: True,
        10,
        "unclassified",
        "EOB with only 'Telemedicine consultation with patient': the medium, not the purpose",
        False,
    ),
    (
        X,
        "371883000",
        "allergy_unspecified",
        lambda r: True,
        40,
        "unclassified",
        "EOB with only 'Outpatient procedure', no procedure or diagnosis code: could be diagnostic or therapeutic",
        False,
    ),
]


def select(bundles, rows):
    used = set()
    out = []
    for kind, tcode, reason, filt, n, job, why, amb in PICKS:
        cands = [
            r
            for r in rows
            if r["type"].startswith(tcode + " ")
            and (reason is None or reason in r["reason"])
            and filt(r)
            and r["enc"] not in used
        ]
        if not cands:
            raise SystemExit(f"no candidate for {kind} {tcode} {reason}")
        r = cands[min(n, len(cands) - 1)]
        used.add(r["enc"])
        pb = bundles[r["file"]]
        if kind == "Encounter":
            rid = r["enc"]
        else:
            claim = next(
                x for x in pb.by_enc[f"urn:uuid:{r['enc']}"] if x["resourceType"] == "Claim"
            )
            rid = claim["id"]
            if kind == "ExplanationOfBenefit":
                rid = next(
                    x["id"]
                    for x in pb.resources
                    if x["resourceType"] == "ExplanationOfBenefit"
                    and x.get("claim", {}).get("reference") == f"urn:uuid:{claim['id']}"
                )
        out.append((r, kind, rid, job, why, amb))
    return out


def main():
    cmd, src = sys.argv[1], Path(sys.argv[2])
    bundles = {p.name: PatientBundle(p) for p in sorted(src.glob("*.json"))}
    rows = []
    for pb in bundles.values():
        for res in pb.resources:
            if res["resourceType"] == "Encounter":
                rows.append(summarize_encounter(pb, res))
    sel = select(bundles, rows)
    if cmd == "preview":
        for r, kind, _rid, job, _why, _amb in sel:
            print(
                f"{kind[:5]} {job:12} {r['class']} {r['type'][:40]} | {r['reason']} age{r['age']} {r['start']}\n"
                f"     here={r['conds_here'][:5]} procs={r['procs'][:5]} meds={r['meds'][:3]} imm={r['imm'][:3]} dr={r['dr'][:3]}\n"
                f"     prior={dis(r)[:10]}"
            )
        print(len(sel))
        return
    lines = []
    for r, _kind, rid, job, why, amb in sel:
        lines.append("[[pick]]")
        lines.append(f"file = {json.dumps(r['file'], ensure_ascii=False)}")
        lines.append(f'id = "{rid}"')
        lines.append(f'job = "{job}"')
        if amb:
            lines.append("ambiguous = true")
        lines.append(f"rationale = {json.dumps(why)}\n")
    Path(sys.argv[3]).write_text("\n".join(lines))
    print(len(sel), "picks")


if __name__ == "__main__":
    main()
