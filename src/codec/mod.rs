pub mod uri;
