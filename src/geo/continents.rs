//! Continent of a country code, for databases that carry only the country (ISO 3166-1
//! alpha-2 → the continent codes MaxMind uses: AF, AN, AS, EU, NA, OC, SA).

const AF: &str = "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW";
const AN: &str = "AQ BV GS HM TF";
const AS: &str = "AE AF AM AZ BD BH BN BT CC CN CX CY GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE";
const EU: &str = "AD AL AT AX BA BE BG BY CH CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK";
const NA: &str = "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI";
const OC: &str = "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS";
const SA: &str = "AR BO BR CL CO EC FK GF GY PE PY SR UY VE";

/// The continent code of an ISO country code, if known.
pub(super) fn of_country(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    [
        ("AF", AF),
        ("AN", AN),
        ("AS", AS),
        ("EU", EU),
        ("NA", NA),
        ("OC", OC),
        ("SA", SA),
    ]
    .into_iter()
    .find(|(_, list)| list.split(' ').any(|c| c == code))
    .map(|(continent, _)| continent)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_few_countries() {
        use super::of_country;
        assert_eq!(of_country("de"), Some("EU"));
        assert_eq!(of_country("BR"), Some("SA"));
        assert_eq!(of_country("JP"), Some("AS"));
        assert_eq!(of_country("US"), Some("NA"));
        assert_eq!(of_country("ZZ"), None);
    }
}
