"""The single home of radarlib's CF/Radial and ODIM vocabulary: names, units, attributes, defaults.

Every attribute string the converter writes comes from here (as xradar's ``model.py`` does
for xradar): field metadata for the ODIM quantity names, the coordinate and sweep
variables, the global attributes of CF/Radial 1.4 and the gate-status flag convention.
Field ``units``/``standard_name``/``long_name`` are those of Py-ART's default
configuration (``pyart.config.get_metadata``) for the equivalent Py-ART field; a test
keeps them in step.

>>> field_attrs("DBZH")["standard_name"]
'equivalent_reflectivity_factor'
>>> status_name("KDP")
'KDP_status'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radarlib.bufr.model import GateStatus

__all__ = [
    "CFRADIAL2_CONVENTIONS",
    "CFRADIAL2_METADATA_GROUPS",
    "CFRADIAL2_VERSION",
    "CF_RADIAL_VERSION",
    "CONVENTIONS",
    "DROPPED_FIELDS_ATTR",
    "DROPPED_FIELD_ERRORS_ATTR",
    "FIELD_VOCABULARY",
    "FILL_VALUE",
    "FOLLOW_MODE",
    "INSTRUMENT_TYPE",
    "ODIM_CONVENTIONS",
    "ODIM_IMAGE_ATTRS",
    "ODIM_NODATA",
    "ODIM_OBJECT",
    "ODIM_PRODUCT",
    "ODIM_UNDETECT",
    "ODIM_VERSION",
    "PLATFORM_TYPE",
    "PRIMARY_AXIS",
    "PRT_MODE",
    "QC_FLAGS_SUFFIX",
    "QC_FLAG_MEANINGS",
    "QC_SUFFIX",
    "SOFTWARE",
    "STATUS_SUFFIX",
    "STRING_LENGTH",
    "SWEEP_GROUP",
    "SWEEP_MODE",
    "FieldVocabulary",
    "coordinate_attrs",
    "field_attrs",
    "global_attrs",
    "odim_source",
    "status_attrs",
    "status_name",
    "time_units",
]

#: ``_FillValue`` of every float field (Py-ART's default fill value, as float32).
FILL_VALUE: np.float32 = np.float32(-9999.0)
#: Suffix of the per-field gate-status variable (``DBZH`` -> ``DBZH_status``).
STATUS_SUFFIX = "_status"
#: CF/Radial convention and version written to ``Conventions`` and ``version``.
CONVENTIONS = "CF/Radial"
CF_RADIAL_VERSION = "1.4"
#: Scan geometry of every RMA/OPERA polar volume.
SWEEP_MODE = "azimuth_surveillance"
PLATFORM_TYPE = "fixed"
PRIMARY_AXIS = "axis_z"
INSTRUMENT_TYPE = "radar"
#: Suffix of a quality-controlled copy of a field (``DBZH`` -> ``DBZH_QC``, radarlib.qc).
QC_SUFFIX = "_QC"
#: Suffix of a field's QC bit-mask variable (``DBZH`` -> ``DBZH_QC_FLAGS``, radarlib.qc).
QC_FLAGS_SUFFIX = "_QC_FLAGS"
#: ``flag_masks`` / ``flag_meanings`` of ``<FIELD>_QC_FLAGS`` (bits of radarlib.qc.FLAG_BITS).
QC_FLAG_MEANINGS: dict[str, int] = {
    "clutter": 1,
    "speckle": 2,
    "velocity_width": 4,
    "velocity_zero": 8,
}
#: Length of the ``string_length`` dimension for character variables.
STRING_LENGTH = 32
#: Global attributes naming the field files left out of a volume (``on_bad_field = "drop"``)
#: and why: ``DBZV`` and ``DBZV: RMA1_0315_01_DBZV_….BUFR: cannot decode: …`` (one per line).
DROPPED_FIELDS_ATTR = "dropped_fields"
DROPPED_FIELD_ERRORS_ATTR = "dropped_field_errors"

#: CfRadial 2.1 / WMO FM 301 (one group per sweep, xradar's DataTree layout).
CFRADIAL2_CONVENTIONS = "Cf/Radial-2.1"
CFRADIAL2_VERSION = "2.1"
#: Name of the group (DataTree node) of sweep ``i``: ``SWEEP_GROUP.format(i)``.
SWEEP_GROUP = "sweep_{}"
#: Values of the FM 301 sweep variables that RMA volumes do not vary.
FOLLOW_MODE = "none"
PRT_MODE = "not_set"

#: ODIM_H5 (EUMETNET OPERA) convention and information-model version written.
ODIM_CONVENTIONS = "ODIM_H5/V2_3"
ODIM_VERSION = "H5rad 2.3"
#: Raw values of ODIM float32 data for undetect (scanned, nothing detected) and nodata
#: (not scanned, or no gate there): the float32 extremes, which no radar value reaches.
ODIM_UNDETECT: float = float(-np.finfo(np.float32).max)
ODIM_NODATA: float = float(np.finfo(np.float32).max)
#: ODIM ``what/object`` of a polar volume and ``what/product`` of each of its sweeps.
ODIM_OBJECT = "PVOL"
ODIM_PRODUCT = "SCAN"
#: HDF5 image attributes ODIM puts on every ``data`` array.
ODIM_IMAGE_ATTRS: dict[str, str] = {"CLASS": "IMAGE", "IMAGE_VERSION": "1.2"}
#: ODIM ``how/software`` of the files radarlib writes.
SOFTWARE = "radarlib"
#: The FM 301 metadata groups beside the sweeps (empty: RMA BUFR does not carry them).
CFRADIAL2_METADATA_GROUPS = ("radar_parameters", "georeferencing_correction", "radar_calibration")


@dataclass(frozen=True)
class FieldVocabulary:
    """Metadata of one ODIM quantity: its Py-ART equivalent and CF/Radial attributes."""

    odim_name: str
    pyart_name: str | None
    units: str
    standard_name: str | None
    long_name: str


#: ODIM quantity name -> metadata (Py-ART default-config names, units and standard names).
FIELD_VOCABULARY: dict[str, FieldVocabulary] = {
    v.odim_name: v
    for v in (
        FieldVocabulary(
            "DBZH", "reflectivity", "dBZ", "equivalent_reflectivity_factor", "Reflectivity"
        ),
        FieldVocabulary(
            "DBZV",
            "reflectivity",
            "dBZ",
            "equivalent_reflectivity_factor",
            "Reflectivity, vertical channel",
        ),
        FieldVocabulary(
            "ZDR",
            "differential_reflectivity",
            "dB",
            "log_differential_reflectivity_hv",
            "Differential reflectivity",
        ),
        FieldVocabulary(
            "RHOHV",
            "cross_correlation_ratio",
            "ratio",
            "cross_correlation_ratio_hv",
            "Cross correlation ratio (RHOHV)",
        ),
        FieldVocabulary(
            "PHIDP",
            "differential_phase",
            "degrees",
            "differential_phase_hv",
            "Differential phase (PhiDP)",
        ),
        FieldVocabulary(
            "KDP",
            "specific_differential_phase",
            "degrees/km",
            "specific_differential_phase_hv",
            "Specific differential phase (KDP)",
        ),
        FieldVocabulary(
            "VRAD",
            "velocity",
            "meters_per_second",
            "radial_velocity_of_scatterers_away_from_instrument",
            "Mean doppler velocity",
        ),
        FieldVocabulary(
            "WRAD",
            "spectrum_width",
            "meters_per_second",
            "doppler_spectrum_width",
            "Doppler spectrum width",
        ),
    )
}

#: Coordinates attribute of every (time, range) variable.
_FIELD_COORDINATES = "elevation azimuth range"

#: Explanation of the per-field ``range_shift`` attribute.
_RANGE_SHIFT_COMMENT = (
    "range_shift[s] = range of the axis gate holding this field's first gate in sweep s minus "
    "the true range of that gate (offset + bin/2), metres; |shift| <= half a gate; NaN where "
    "the field lacks sweep s"
)


def _qc_attrs(name: str) -> dict[str, Any] | None:
    """Attributes of a QC variable (``DBZH_QC``, ``DBZH_QC_FLAGS``); None for other names."""
    if name.endswith(QC_FLAGS_SUFFIX):
        base = name[: -len(QC_FLAGS_SUFFIX)]
        return {
            "long_name": f"Quality-control flags of {base}",
            "units": "1",
            "flag_masks": np.array(list(QC_FLAG_MEANINGS.values()), dtype=np.float32),
            "flag_meanings": " ".join(QC_FLAG_MEANINGS),
            "comment": f"Bits set where a QC filter removed the {base} gate; 0 = kept",
        }
    if name.endswith(QC_SUFFIX):
        base = name[: -len(QC_SUFFIX)]
        attrs = field_attrs(base)
        attrs["long_name"] = f"{attrs['long_name']}, quality controlled"
        attrs["comment"] = (
            f"{base} with the gates removed by radarlib QC masked (status undetect); "
            "the steps are in the global attribute qc_steps"
        )
        return attrs
    return None


def field_attrs(name: str) -> dict[str, Any]:
    """CF/Radial attributes of field ``name``; an unknown quantity passes through with its name."""
    qc = _qc_attrs(name)
    if qc is not None:
        qc.update(
            {
                "_FillValue": FILL_VALUE,
                "coordinates": _FIELD_COORDINATES,
                "ancillary_variables": status_name(name),
                "range_shift_comment": _RANGE_SHIFT_COMMENT,
            }
        )
        return qc
    vocab = FIELD_VOCABULARY.get(name)
    attrs: dict[str, Any] = {}
    if vocab is None:
        attrs["long_name"] = name
        attrs["units"] = "unknown"
    else:
        attrs["long_name"] = vocab.long_name
        if vocab.standard_name is not None:
            attrs["standard_name"] = vocab.standard_name
        attrs["units"] = vocab.units
    attrs["_FillValue"] = FILL_VALUE
    attrs["coordinates"] = _FIELD_COORDINATES
    attrs["ancillary_variables"] = status_name(name)
    attrs["range_shift_comment"] = _RANGE_SHIFT_COMMENT
    return attrs


def status_name(field: str) -> str:
    """Name of the gate-status variable of ``field``."""
    return f"{field}{STATUS_SUFFIX}"


def _flag_meaning(status: GateStatus) -> str:
    return status.name.lower()


def status_attrs(field: str) -> dict[str, Any]:
    """CF flag attributes of ``<field>_status`` (values and meanings from :class:`GateStatus`)."""
    members = list(GateStatus)
    return {
        "long_name": f"Gate status of {field}",
        "standard_name": "status_flag",
        "flag_values": np.array([int(m) for m in members], dtype=np.uint8),
        "flag_meanings": " ".join(_flag_meaning(m) for m in members),
        "coordinates": _FIELD_COORDINATES,
        "comment": (
            "Why a gate of the field is masked: undetect = ODIM undetect (-DBL_MAX, scanned, "
            "nothing detected), nodata = ODIM nodata (+DBL_MAX, not scanned), nan = NaN "
            "(or infinite) artefact of the radar processor, outside = no gate there "
            "(beyond the sweep's range extent, or the field lacks the sweep)"
        ),
    }


def time_units(start_iso: str) -> str:
    """CF units of the ``time`` variable: seconds since the volume start (ISO, ``Z``)."""
    return f"seconds since {start_iso}"


_COORDINATES: dict[str, dict[str, Any]] = {
    "time": {
        "standard_name": "time",
        "long_name": "time_in_seconds_since_volume_start",
        "calendar": "gregorian",
        "comment": (
            "Time at the centre of each ray. Rays of a sweep are spread evenly over the "
            "sweep's start and end time in acquisition order (ODIM convention, first ray = "
            "row a1gate); a sweep whose end does not follow its start has all rays at its start"
        ),
    },
    "range": {
        "units": "meters",
        "standard_name": "projection_range_coordinate",
        "long_name": "range_to_measurement_volume",
        "axis": "radial_range_coordinate",
        "spacing_is_constant": "true",
        "comment": "Coordinate variable for range. Range to center of each bin.",
    },
    "azimuth": {
        "units": "degrees",
        "standard_name": "beam_azimuth_angle",
        "long_name": "azimuth_angle_from_true_north",
        "axis": "radial_azimuth_coordinate",
        "comment": "Centre of the azimuth bin of the ray: (row + 0.5) * 360 / nrays (ODIM)",
    },
    "elevation": {
        "units": "degrees",
        "standard_name": "beam_elevation_angle",
        "long_name": "elevation_angle_from_horizontal_plane",
        "axis": "radial_elevation_coordinate",
        "comment": "Elevation of antenna relative to the horizontal plane",
    },
    "latitude": {"units": "degrees_north", "standard_name": "latitude", "long_name": "Latitude"},
    "longitude": {
        "units": "degrees_east",
        "standard_name": "longitude",
        "long_name": "Longitude",
    },
    "altitude": {
        "units": "meters",
        "standard_name": "altitude",
        "long_name": "Altitude",
        "positive": "up",
    },
    "sweep_number": {
        "units": "count",
        "standard_name": "sweep_number",
        "long_name": "Sweep number",
    },
    "sweep_mode": {
        "units": "unitless",
        "standard_name": "sweep_mode",
        "long_name": "Sweep mode",
    },
    "fixed_angle": {
        "units": "degrees",
        "standard_name": "target_fixed_angle",
        "long_name": "Target angle for sweep",
    },
    "sweep_start_ray_index": {
        "units": "count",
        "long_name": "Index of first ray in sweep, 0-based",
    },
    "sweep_end_ray_index": {"units": "count", "long_name": "Index of last ray in sweep, 0-based"},
    "ray_angle_res": {"units": "degrees", "long_name": "Angular resolution between rays"},
    "rays_are_indexed": {
        "long_name": "Flag for indexed rays",
        "units": "unitless",
        "comment": "Rays are on a regular azimuth grid",
    },
    "time_coverage_start": {"units": "unitless", "long_name": "UTC time of first ray in file"},
    "time_coverage_end": {"units": "unitless", "long_name": "UTC time of last ray in file"},
    "volume_number": {"units": "unitless", "long_name": "Volume number"},
    "platform_type": {"long_name": "Platform type"},
    "instrument_type": {"long_name": "Instrument type"},
    "primary_axis": {"long_name": "Primary axis"},
}


def coordinate_attrs(name: str) -> dict[str, Any]:
    """Attributes of a CF/Radial coordinate, sweep or global variable (a fresh copy)."""
    return dict(_COORDINATES[name])


#: Global attributes with fixed defaults (the rest are filled per volume by global_attrs()).
_GLOBAL_DEFAULTS: dict[str, str] = {
    "Conventions": CONVENTIONS,
    "version": CF_RADIAL_VERSION,
    "title": "Weather radar polar volume",
    "institution": "Argentine weather radar network",
    "references": (
        "CF/Radial 1.4 format; input OPERA/ODIM polar-volume BUFR (WMO FM 94, "
        "local tables of centre 41); ODIM_H5 2.x geometry conventions"
    ),
    "comment": (
        "Converted from RMA/INVAP OPERA-style BUFR. Masked gates have _FillValue; "
        "<FIELD>_status (CF flags) says why: undetect, nodata, nan, outside"
    ),
    "platform_is_mobile": "false",
    "n_gates_vary": "false",
}


def odim_source(radar: str, wmo_block: int | None, wmo_station: int | None) -> str:
    """ODIM ``what/source``: ``NOD`` (country code + radar code, lower case), ``PLC``, ``WMO``."""
    parts = [f"NOD:ar{radar.lower()}", f"PLC:{radar}"]
    if wmo_block is not None and wmo_station is not None:
        parts.insert(0, f"WMO:{wmo_block:02d}{wmo_station:03d}")
    return ",".join(parts)


def global_attrs(
    *,
    instrument_name: str,
    scan_name: str,
    volume_number: str,
    sources: list[str],
    history: str,
    time_coverage_start: str,
    time_coverage_end: str,
    missing_fields: list[str],
    warnings: list[str],
    ray_times_increase: bool,
) -> dict[str, Any]:
    """Global attributes of one converted volume (CF/Radial 1.4 plus radarlib's records)."""
    attrs: dict[str, Any] = dict(_GLOBAL_DEFAULTS)
    attrs.update(
        {
            "title": f"{instrument_name} {_GLOBAL_DEFAULTS['title'].lower()}, strategy "
            f"{scan_name}, volume {volume_number}",
            "instrument_name": instrument_name,
            "site_name": instrument_name,
            "scan_name": scan_name,
            "scan_id": int(scan_name) if scan_name.isdigit() else 0,
            "volume_number": volume_number,
            "source": ", ".join(sources),
            "history": history,
            "time_coverage_start": time_coverage_start,
            "time_coverage_end": time_coverage_end,
            "platform_type": PLATFORM_TYPE,
            "instrument_type": INSTRUMENT_TYPE,
            "primary_axis": PRIMARY_AXIS,
            "ray_times_increase": "true" if ray_times_increase else "false",
            "missing_fields": ", ".join(missing_fields),
            "conversion_warnings": "\n".join(warnings),
        }
    )
    return attrs
