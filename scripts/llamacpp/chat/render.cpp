// Renders chat templates with llama.cpp's common_chat_templates_apply
// (the path llama-server takes). Input: JSON lines on stdin, each
// {"template":..., "bos":..., "eos":..., "messages":[...], "tools":[...]?,
//  "add_generation_prompt":bool, "kwargs":{name: json-text}}
// Output: one JSON line per input: {"prompt":...} or {"error":...}.
#include "chat.h"
#include "json.h"
#include <iostream>
#include <string>

using json = common_json;

int main() {
    std::string line;
    while (std::getline(std::cin, line)) {
        json out = json::object();
        try {
            json in = json::parse(line);
            auto tmpls = common_chat_templates_init(nullptr, in.at("template").get<std::string>(),
                                                    in.at("bos").get<std::string>(), in.at("eos").get<std::string>());
            common_chat_templates_inputs inputs;
            inputs.use_jinja = true;
            inputs.messages = common_chat_msgs_parse_oaicompat(in.at("messages"));
            if (in.contains("tools")) {
                inputs.tools = common_chat_tools_parse_oaicompat(in.at("tools"));
            }
            inputs.add_generation_prompt = in.at("add_generation_prompt").get<bool>();
            if (in.contains("kwargs")) {
                for (const auto & [k, v] : in.at("kwargs").items()) {
                    inputs.chat_template_kwargs[k] = v.get<std::string>();
                }
            }
            out["prompt"] = common_chat_templates_apply(tmpls.get(), inputs).prompt;
        } catch (const std::exception & e) {
            out["error"] = std::string(e.what());
        }
        std::cout << out.dump() << "\n";
        std::cout.flush();
    }
    return 0;
}
