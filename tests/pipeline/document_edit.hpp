// Editing a parsed message in the pipeline tests: one member set to some JSON, by JSON Pointer.
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <string>

namespace mxgw::test {

/// Sets the value at `pointer` to the parsed JSON `value_json` (the test fails on a bad pointer
/// or JSON).
inline void set_json(rapidjson::Document& doc, const std::string& pointer,
                     const std::string& value_json) {
  rapidjson::Document value(&doc.GetAllocator());
  ASSERT_FALSE(value.Parse(value_json.c_str()).HasParseError()) << value_json;
  rapidjson::Pointer p(pointer.c_str());
  ASSERT_TRUE(p.IsValid()) << pointer;
  p.Set(doc, value.Move(), doc.GetAllocator());
}

}  // namespace mxgw::test
