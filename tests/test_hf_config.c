/* config.json for the dense families (model/hf_config.h): transformers' defaults, both
 * rope spellings (rope_parameters, legacy rope_theta/rope_scaling), validation messages
 * that name the field, refusal of unsupported features, and write -> read round trips. */
#include <stdlib.h>
#include <unistd.h>

#include "model/hf_config.h"
#include "tests/harness.h"

static grpo_status parse(const char *text, dense_config *c) {
    return hf_config_dense_parse(text, strlen(text), "config.json", c);
}

static void test_defaults(void) {
    dense_config c;
    CHECK_OK(parse("{\"model_type\": \"qwen2\", \"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 96,"
                   " \"num_hidden_layers\": 2, \"num_attention_heads\": 4}", &c));
    CHECK_STR("qwen2", c.model_type);
    CHECK_INT(4, c.num_key_value_heads);   /* defaults to num_attention_heads */
    CHECK_INT(16, c.head_dim);             /* hidden / heads */
    CHECK_INT(32768, c.max_position_embeddings);
    CHECK(c.rope.type == HF_ROPE_DEFAULT && c.rope.theta == 10000.0);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK_INT(1, dense_config_qkv_bias(&c));
    CHECK_INT(0, dense_config_o_bias(&c));
    CHECK_INT(0, c.tie_word_embeddings);
    CHECK_INT(-1, c.bos_token_id);
    CHECK_INT(0, c.n_eos);

    CHECK_OK(parse("{\"model_type\": \"llama\", \"hidden_size\": 48, \"num_attention_heads\": 4, \"head_dim\": 16,"
                   " \"num_key_value_heads\": 2, \"attention_bias\": true, \"rope_theta\": 500000.0,"
                   " \"rope_scaling\": null, \"eos_token_id\": [7, 9], \"tie_word_embeddings\": true}", &c));
    CHECK_INT(32000, c.vocab_size);
    CHECK_INT(16, c.head_dim);
    CHECK_INT(64, dense_config_q_dim(&c));
    CHECK_INT(32, dense_config_kv_dim(&c));
    CHECK_INT(1, dense_config_o_bias(&c));
    CHECK(c.rope.theta == 500000.0);
    CHECK_INT(1, c.bos_token_id);
    CHECK_INT(2, c.n_eos);
    CHECK_INT(9, c.eos_token_ids[1]);
    CHECK_INT(1, c.tie_word_embeddings);
}

static void test_rope(void) {
    dense_config c;
    /* rope_parameters wins over a top-level rope_theta (transformers >= 5 priority). */
    CHECK_OK(parse("{\"model_type\": \"qwen2\", \"rope_theta\": 5.0, \"rope_parameters\": "
                   "{\"rope_type\": \"default\", \"rope_theta\": 1000000.0}}", &c));
    CHECK(c.rope.type == HF_ROPE_DEFAULT && c.rope.theta == 1e6);
    CHECK_OK(parse("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}", &c));
    CHECK(c.rope.type == HF_ROPE_LINEAR && c.rope.factor == 2.0 && c.rope.theta == 10000.0);
    CHECK_OK(parse("{\"model_type\": \"llama\", \"max_position_embeddings\": 4096, \"rope_scaling\": {\"rope_type\":"
                   " \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}", &c));
    CHECK(c.rope.type == HF_ROPE_LLAMA3 && c.rope.factor == 8.0 && c.rope.high_freq_factor == 4.0);
    CHECK_INT(4096, c.rope.original_max_position_embeddings);   /* defaults to max_position_embeddings */
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}}", &c),
                "rope type \"yarn\" is not supported");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"rope_parameters\": {\"rope_type\": \"dynamic\"}}", &c),
                "\"dynamic\"");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\"}}", &c),
                "rope factor");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"rope_parameters\": {\"rope_type\": \"default\","
                      " \"partial_rotary_factor\": 0.5}}", &c), "partial_rotary_factor");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"rope_scaling\": 3}", &c), "rope_scaling: expected an object");
}

static void test_errors(void) {
    dense_config c;
    memset(&c, 0x5a, sizeof c);
    dense_config before = c;
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"hidden_size\": 60, \"num_attention_heads\": 12,"
                      " \"num_key_value_heads\": 5}", &c),
                "config.json: num_attention_heads (12) must be a multiple of num_key_value_heads (5)");
    CHECK(memcmp(&c, &before, sizeof c) == 0);   /* untouched on failure */
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"hidden_size\": \"64\"}", &c),
                "config.json: hidden_size: expected an integer");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"hidden_size\": 0}", &c), "hidden_size (0) must be in");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"vocab_size\": 1e12}", &c), "vocab_size");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"head_dim\": 7, \"hidden_size\": 28, \"num_attention_heads\": 4}",
                      &c), "head_dim (7) must be even");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"rms_norm_eps\": -1}", &c), "rms_norm_eps");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"num_attention_heads\": 0}", &c), "num_attention_heads (0)");
    CHECK_FAILS(parse("{\"model_type\": \"mistral\"}", &c), "model_type \"mistral\"");
    CHECK_FAILS(parse("{\"vocab_size\": 5}", &c), "model_type: missing");
    CHECK_FAILS(parse("[1, 2]", &c), "expected a JSON object");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\",", &c), "config.json:1:");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"hidden_act\": \"gelu\"}", &c), "hidden_act \"gelu\"");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"use_sliding_window\": true, \"max_window_layers\": 1,"
                      " \"num_hidden_layers\": 2}", &c), "use_sliding_window");
    CHECK_OK(parse("{\"model_type\": \"qwen2\", \"use_sliding_window\": true, \"max_window_layers\": 2,"
                   " \"num_hidden_layers\": 2}", &c));   /* no layer slides */
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"layer_types\": [\"full_attention\", \"sliding_attention\"]}", &c),
                "layer_types[1]");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"mlp_bias\": true}", &c), "mlp_bias");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"attention_bias\": 1}", &c), "attention_bias: expected true or false");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"eos_token_id\": [1, \"x\"]}", &c), "eos_token_id[1]");
    CHECK_FAILS(parse("{\"model_type\": \"llama\", \"pretraining_tp\": 2}", &c), "pretraining_tp");
    CHECK_FAILS(parse("{\"model_type\": \"qwen2\", \"model_type\": \"llama\"}", &c), "config.json");   /* duplicate key */
    CHECK_FAILS(hf_config_dense_read("/nonexistent/config.json", &c), "/nonexistent/config.json");
}

static void test_round_trip(void) {
    char dir[] = "/tmp/test_hf_config_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); CHECK(0); return; }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *inputs[] = {
        "{\"model_type\": \"qwen2\", \"vocab_size\": 151936, \"hidden_size\": 896, \"intermediate_size\": 4864,"
        " \"num_hidden_layers\": 24, \"num_attention_heads\": 14, \"num_key_value_heads\": 2, \"rope_theta\": 1000000.0,"
        " \"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": true, \"max_position_embeddings\": 32768,"
        " \"bos_token_id\": 151643, \"eos_token_id\": 151643}",
        "{\"model_type\": \"llama\", \"vocab_size\": 128256, \"hidden_size\": 2048, \"intermediate_size\": 8192,"
        " \"num_hidden_layers\": 16, \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 64,"
        " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 32.0,"
        " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,"
        " \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": true, \"max_position_embeddings\": 131072,"
        " \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009], \"pad_token_id\": 5,"
        " \"attention_bias\": true}",
        /* reals that need all 17 digits must survive the shortest-text writer */
        "{\"model_type\": \"qwen2\", \"rope_theta\": 1234567.8910111213, \"rms_norm_eps\": 3.3333333333333333e-7,"
        " \"initializer_range\": 0.30000000000000004, \"hidden_size\": 64, \"num_attention_heads\": 4}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        dense_config a, b;
        CHECK_OK(parse(inputs[i], &a));
        CHECK_OK(hf_config_dense_write(&a, path));
        CHECK_OK(hf_config_dense_read(path, &b));
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "config %zu changed in a write -> read round trip", i);
        if (i == 0) {   /* written as transformers writes it */
            FILE *f = fopen(path, "r");
            char text[4096] = "";
            size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
            text[n] = '\0';
            if (f) fclose(f);
            CHECK(strstr(text, "\"rms_norm_eps\": 1e-06,") != NULL);
            CHECK(strstr(text, "\"rope_theta\": 1000000.0,") != NULL);
            CHECK(strstr(text, "\"architectures\": [\"Qwen2ForCausalLM\"],") != NULL);
        }
        char type[16];
        CHECK_OK(hf_config_model_type(path, type, sizeof type));
        CHECK_STR(a.model_type, type);
    }
    dense_config bad;
    CHECK_OK(hf_config_dense_defaults(&bad, "llama"));
    bad.num_key_value_heads = 3;
    CHECK_FAILS(hf_config_dense_write(&bad, path), "num_key_value_heads (3)");
    CHECK_FAILS(hf_config_dense_defaults(&bad, "gpt2"), "\"gpt2\"");
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_defaults();
    test_rope();
    test_errors();
    test_round_trip();
    TEST_MAIN_END();
}
