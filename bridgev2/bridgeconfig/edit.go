package bridgeconfig

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// EditYAML sets keys (dotted paths, e.g. "appservice.port") in a YAML
// document and returns the new document. It edits the node tree, so the
// file's comments and key order survive; sections and keys that do not
// exist yet are created.
func EditYAML(data []byte, edits map[string]any) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	for path, value := range edits {
		var valueNode yaml.Node
		if err := valueNode.Encode(value); err != nil {
			return nil, fmt.Errorf("encode %s: %w", path, err)
		}
		if err := setPath(doc.Content[0], strings.Split(path, "."), &valueNode); err != nil {
			return nil, fmt.Errorf("set %s: %w", path, err)
		}
	}
	return yaml.Marshal(&doc)
}

func setPath(node *yaml.Node, path []string, value *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s is inside a value that is not a section", path[0])
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == path[0] {
			if len(path) == 1 {
				node.Content[i+1] = value
				return nil
			}
			return setPath(node.Content[i+1], path[1:], value)
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: path[0]}
	if len(path) == 1 {
		node.Content = append(node.Content, key, value)
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode}
	node.Content = append(node.Content, key, child)
	return setPath(child, path[1:], value)
}
