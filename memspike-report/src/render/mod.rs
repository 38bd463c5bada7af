//! The views: what a report shows a person ([`view::View`], [`chart::Chart`], on a scenario's
//! [`story`] axis or the wall clock) and the renderers that lay it out for a terminal
//! ([`text`]), a browser ([`html`]) and a picture ([`svg`]).

pub mod chart;
pub mod html;
pub mod story;
pub mod svg;
pub mod text;
pub mod view;
