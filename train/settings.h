#pragma once
// The ssa-train config: its schema (every key, default, range and meaning) and the conversion
// from a resolved Config to the settings the trainer and the model take.
#include <string>
#include <vector>

#include "train/config.h"
#include "train/trainer.h"

namespace ssa {

std::vector<ConfigEntry> train_config_schema();
// A Config over train_config_schema(), every key at its default.
Config default_train_config();

ModelConfig model_config_from(const Config& config);
// Everything the trainer needs; config_text is the resolved config as to_text() writes it.
TrainSettings train_settings_from(const Config& config);

}  // namespace ssa
